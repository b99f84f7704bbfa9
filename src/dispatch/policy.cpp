// Policy names, option validation and the factory.
#include "swarm/dispatch/policy.hpp"

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "option_error.hpp"
#include "queue_policy.hpp"

namespace swarm::dispatch {

namespace {

constexpr std::array kPolicies{
    PolicyKind::static_split,   PolicyKind::round_robin,     PolicyKind::consistent_hash,
    PolicyKind::bounded_hash,   PolicyKind::self_fixed,      PolicyKind::self_gss,
    PolicyKind::self_factoring, PolicyKind::self_weighted_factoring,
    PolicyKind::self_tapering,  PolicyKind::work_stealing,   PolicyKind::diffusion1,
    PolicyKind::diffusion2,     PolicyKind::power_of_two};

using detail::reject_option;

}  // namespace

std::string_view to_string(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::static_split: return "static";
    case PolicyKind::round_robin: return "round_robin";
    case PolicyKind::consistent_hash: return "consistent_hash";
    case PolicyKind::bounded_hash: return "bounded_hash";
    case PolicyKind::self_fixed: return "self_fixed";
    case PolicyKind::self_gss: return "self_gss";
    case PolicyKind::self_factoring: return "self_factoring";
    case PolicyKind::self_weighted_factoring: return "self_weighted_factoring";
    case PolicyKind::self_tapering: return "self_tapering";
    case PolicyKind::work_stealing: return "work_stealing";
    case PolicyKind::diffusion1: return "diffusion1";
    case PolicyKind::diffusion2: return "diffusion2";
    case PolicyKind::power_of_two: return "power_of_two";
  }
  return "?";
}

std::span<const PolicyKind> all_policies() { return kPolicies; }

std::optional<PolicyKind> parse_policy(std::string_view name) {
  for (PolicyKind k : kPolicies) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

PolicyKind parse_policy_or_throw(std::string_view name) {
  if (const auto k = parse_policy(name)) return *k;
  std::string known;
  for (PolicyKind k : kPolicies) known += (known.empty() ? "" : ", ") + std::string(to_string(k));
  throw std::invalid_argument("unknown dispatch policy '" + std::string(name) + "' (known: " + known + ")");
}

bool is_self_scheduling(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::self_fixed:
    case PolicyKind::self_gss:
    case PolicyKind::self_factoring:
    case PolicyKind::self_weighted_factoring:
    case PolicyKind::self_tapering: return true;
    default: return false;
  }
}

ChunkRuleKind chunk_rule_of(PolicyKind kind) {
  switch (kind) {
    case PolicyKind::self_fixed: return ChunkRuleKind::fixed;
    case PolicyKind::self_gss: return ChunkRuleKind::guided;
    case PolicyKind::self_factoring: return ChunkRuleKind::factoring;
    case PolicyKind::self_weighted_factoring: return ChunkRuleKind::weighted_factoring;
    case PolicyKind::self_tapering: return ChunkRuleKind::tapering;
    default:
      throw std::invalid_argument("dispatch policy " + std::string(to_string(kind)) +
                                  " has no chunk rule");
  }
}

void validate(const DispatchOptions& o) {
  const auto finite_nonneg = [](double x) { return std::isfinite(x) && x >= 0.0; };
  const auto finite_pos = [](double x) { return std::isfinite(x) && x > 0.0; };
  if (!finite_nonneg(o.message_latency_s)) reject_option("message_latency_s", o.message_latency_s, "it must be finite and >= 0");
  if (!(o.speed_smoothing > 0.0 && o.speed_smoothing <= 1.0)) {
    reject_option("speed_smoothing", o.speed_smoothing, "it must be in (0, 1]");
  }
  if (o.hash.virtual_nodes < 1) {
    reject_option("hash.virtual_nodes", o.hash.virtual_nodes, "a bucket needs at least one point on the ring");
  }
  if (!finite_pos(o.hash.eps)) reject_option("hash.eps", o.hash.eps, "bounded loads need eps > 0");
  // The chunk options are checked where the rule is built, with the same wording.
  (void)ChunkRule(ChunkRuleKind::fixed, o.self);
  if (!finite_pos(o.stealing.backoff_s)) {
    reject_option("stealing.backoff_s", o.stealing.backoff_s, "it must be > 0, or idle thieves would retry without end at one instant");
  }
  if (!(std::isfinite(o.stealing.backoff_max_s) && o.stealing.backoff_max_s >= o.stealing.backoff_s)) {
    reject_option("stealing.backoff_max_s", o.stealing.backoff_max_s, "it must be finite and >= stealing.backoff_s");
  }
  if (!finite_pos(o.diffusion.period_s)) reject_option("diffusion.period_s", o.diffusion.period_s, "it must be > 0");
  if (o.diffusion.alpha && !(*o.diffusion.alpha > 0.0 && *o.diffusion.alpha <= 1.0)) {
    reject_option("diffusion.alpha", *o.diffusion.alpha, "it must be in (0, 1]");
  }
  if (!(o.diffusion.beta > 0.0 && o.diffusion.beta < 2.0)) {
    reject_option("diffusion.beta", o.diffusion.beta, "second-order diffusion converges only for beta in (0, 2)");
  }
  if (o.choices.choices < 1) {
    reject_option("choices.choices", o.choices.choices, "at least one server must be probed");
  }
}

std::unique_ptr<Policy> make_policy(PolicyKind kind, const DispatchOptions& options, std::uint64_t seed) {
  validate(options);
  switch (kind) {
    case PolicyKind::static_split: return detail::make_static_split(options, seed);
    case PolicyKind::round_robin: return detail::make_round_robin(options, seed);
    case PolicyKind::consistent_hash: return detail::make_consistent_hash(options, seed);
    case PolicyKind::bounded_hash: return detail::make_bounded_hash(options, seed);
    case PolicyKind::self_fixed:
    case PolicyKind::self_gss:
    case PolicyKind::self_factoring:
    case PolicyKind::self_weighted_factoring:
    case PolicyKind::self_tapering: return detail::make_self_scheduling(kind, options, seed);
    case PolicyKind::work_stealing: return detail::make_work_stealing(options, seed);
    case PolicyKind::diffusion1:
    case PolicyKind::diffusion2: return detail::make_diffusion(kind, options, seed);
    case PolicyKind::power_of_two: return detail::make_power_of_choices(options, seed);
  }
  throw std::invalid_argument("unknown dispatch policy kind " + std::to_string(static_cast<int>(kind)));
}

}  // namespace swarm::dispatch
