#include "swarm/job/config.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "swarm/util/random.hpp"

namespace po = boost::program_options;

namespace swarm::job {
namespace {

DeviceClass device_class(const JobFile& job, const Table& t, int blocks) {
  DeviceClass d;
  d.name = t.name;
  for (const auto& [field, raw] : t.values) {
    const std::string key = "class." + t.name + "." + field;
    const double v = parse_number(job, key, raw);
    const auto need = [&](bool ok, const std::string& why) {
      if (!ok || !std::isfinite(v)) job.fail(key, raw, why);
    };
    if (field == "compute_factor") {
      need(v >= 1 && v <= 1000, "must be in [1, 1000] (how many times slower this class computes)");
      d.compute_factor = v;
    } else if (field == "link_mbps") {
      // Below 1 Mbit/s one batch's activations would outlast any epoch.
      need(v == 0 || (v >= 1 && v <= 1e9), "must be 0 (no cap) or in [1, 1e9] Mbit/s");
      d.link_mbps = v;
    } else if (field == "latency_ms") {
      need(v >= 0 && v <= 10000, "must be in [0, 10000]");
      d.latency_ms = v;
    } else if (field == "span") {
      need(v >= 0 && v <= blocks && v == std::floor(v), "must be a whole number of blocks in 0.." +
                                                             std::to_string(blocks) + " (model layers)");
      d.span = static_cast<int>(v);
    } else if (field == "slowdown_sigma") {
      need(v >= 0 && v <= 3, "must be in [0, 3]");
      d.slowdown_sigma = v;
    } else if (field == "slowdown_from") {
      need(v >= 0 && v <= 1e9 && v == std::floor(v), "must be an epoch (1-based), or 0 for never");
      d.slowdown_from = static_cast<int>(v);
    } else if (field == "slowdown_factor") {
      need(v >= 1 && v <= 1000, "must be in [1, 1000] (how many times slower from class.NAME.slowdown_from on)");
      d.slowdown_factor = v;
    } else {
      job.fail(key, raw,
               "unknown key (a class has compute_factor, link_mbps, latency_ms, span, slowdown_sigma, slowdown_from, "
               "slowdown_factor)");
    }
  }
  return d;
}

// "2 3, 4 1" -> {(2,3), (4,1)}
std::vector<Churn::Event> events(const JobFile& job, const std::string& key, int epochs, int world) {
  std::vector<Churn::Event> out;
  for (const auto& item : split_list(job.get<std::string>(key))) {
    std::istringstream in(item);
    long epoch = -1, rank = -1;
    std::string extra;
    if (!(in >> epoch >> rank) || (in >> extra)) job.fail(key, item, "each item must be 'EPOCH RANK'");
    if (epoch < 2 || epoch > epochs) {
      job.fail(key, item, "epoch must be in 2.." + std::to_string(epochs) +
                              " (epochs count from 1; churn acts at the boundary before the epoch)");
    }
    if (rank < 0 || rank >= world) job.fail(key, item, "rank must be in 0.." + std::to_string(world - 1));
    out.push_back({static_cast<int>(epoch), static_cast<int>(rank)});
  }
  return out;
}

// Scheduled churn that cannot be meant: every rank gone at some epoch (the swarm would serve
// nothing), and, without random churn (which makes the states unpredictable), a leave of a rank
// that is not serving or a join of one that is (the engine would ignore it).
void check_schedule(const JobFile& job, const Churn& churn, int world) {
  const bool random = churn.leave_probability > 0 || churn.join_probability > 0;
  int last = 1;
  for (const auto* list : {&churn.leaves, &churn.joins}) {
    for (const auto& e : *list) last = std::max(last, e.epoch);
  }
  std::vector<char> serving(static_cast<std::size_t>(world), 1);
  for (int epoch = 2; epoch <= last; ++epoch) {
    std::vector<char> leaving(serving.size(), 0);
    for (const auto& e : churn.leaves) {
      if (e.epoch != epoch) continue;
      if (!serving[static_cast<std::size_t>(e.rank)] && !random) {
        job.fail("churn.leaves", std::to_string(e.epoch) + " " + std::to_string(e.rank),
                 "rank " + std::to_string(e.rank) + " is not serving before epoch " + std::to_string(epoch) +
                     " (it left earlier and has not joined again)");
      }
      leaving[static_cast<std::size_t>(e.rank)] = 1;
    }
    for (const auto& e : churn.joins) {
      if (e.epoch != epoch) continue;
      if (serving[static_cast<std::size_t>(e.rank)] && !leaving[static_cast<std::size_t>(e.rank)] && !random) {
        job.fail("churn.joins", std::to_string(e.epoch) + " " + std::to_string(e.rank),
                 "rank " + std::to_string(e.rank) + " is serving before epoch " + std::to_string(epoch) +
                     " (it never left), so it cannot join");
      }
    }
    for (std::size_t r = 0; r < serving.size(); ++r) {
      if (leaving[r]) serving[r] = 0;
    }
    for (const auto& e : churn.joins) {
      if (e.epoch == epoch) serving[static_cast<std::size_t>(e.rank)] = 1;
    }
    if (std::none_of(serving.begin(), serving.end(), [](char s) { return s != 0; })) {
      job.fail("churn.leaves", job.get<std::string>("churn.leaves"),
               "no rank is serving from epoch " + std::to_string(epoch) + ": a swarm with no server serves nothing");
    }
  }
}

}  // namespace

double JobConfig::slowdown_of(int rank, int epoch) const {
  const DeviceClass& device = class_of(rank);
  double slowdown = 1.0;
  if (device.slowdown_sigma > 0) {
    Rng rng(derive_seed(seed, "speed/" + std::to_string(rank) + "/" + std::to_string(epoch)));
    slowdown = std::exp(device.slowdown_sigma * std::fabs(standard_normal(rng)));
  }
  if (device.slowdown_from > 0 && epoch + 1 >= device.slowdown_from) slowdown *= device.slowdown_factor;
  return slowdown;
}

const DeviceClass& JobConfig::class_of(int rank) const {
  static const DeviceClass fallback;
  if (rank_classes.empty()) return classes.empty() ? fallback : classes.front();
  const std::string& name = rank_classes[static_cast<std::size_t>(rank) % rank_classes.size()];
  for (const auto& c : classes) {
    if (c.name == name) return c;
  }
  return fallback;
}

int JobConfig::span_of(int rank, int world_size, int blocks) const {
  const int own = class_of(rank).span;
  if (own > 0) return std::min(own, blocks);
  if (span > 0) return std::min(span, blocks);
  // Automatic: about two replicas of every block, so balancing has choices and a leave
  // does not cut the pipeline.
  return std::min(blocks, std::max(1, (2 * blocks + world_size - 1) / world_size));
}

po::options_description schema() {
  po::options_description program("Program options");
  program.add_options()
      ("help,h", "print every option and job key with its default")
      ("job", po::value<std::string>(), "job file (INI); keys below, command line wins")
      ("trace", po::value<std::string>(), "HDF5 trace to write (rank 0; overwritten); same as run.trace")
      ("quiet", "no per-epoch progress lines")
      ("model-dir", po::value<std::string>(), "Hugging Face checkpoint directory; same as model.dir")
      ("prompt-tokens", po::value<std::string>(), "generation mode: comma-separated prompt token ids")
      ("max-new-tokens", po::value<long>()->default_value(4), "generation mode: tokens to generate")
      ("dump-output", po::value<std::string>(), "generation mode: HDF5 file for /output/tokens and /output/logits");
  po::options_description keys("Job keys ([model], [run], [servers], [class.NAME], [workload], [churn])");
  keys.add_options()
      ("model.dir", po::value<std::string>()->default_value(""), "checkpoint directory (config.json + *.safetensors); empty: seeded random weights with the dimensions below")
      ("model.hidden_size", po::value<long>()->default_value(64), "random weights: hidden size")
      ("model.intermediate_size", po::value<long>()->default_value(172), "random weights: MLP size")
      ("model.layers", po::value<long>()->default_value(8), "random weights: decoder blocks")
      ("model.heads", po::value<long>()->default_value(4), "random weights: attention heads")
      ("model.kv_heads", po::value<long>()->default_value(2), "random weights: key/value heads (grouped-query attention)")
      ("model.head_dim", po::value<long>()->default_value(0), "random weights: head dimension (0: hidden_size / heads)")
      ("model.vocab_size", po::value<long>()->default_value(256), "random weights: vocabulary")
      ("model.max_position", po::value<long>()->default_value(4096), "random weights: max positions")
      ("model.rope_theta", po::value<double>()->default_value(10000.0), "random weights: RoPE base")
      ("model.rms_norm_eps", po::value<double>()->default_value(1e-5), "random weights: RMSNorm epsilon")
      ("model.eos_token_id", po::value<long>()->default_value(-1), "random weights: end-of-sequence token for stop_at_eos (-1: none)")
      ("model.seed", po::value<std::uint64_t>()->default_value(1), "random weights: seed (block i's weights depend only on it)")
      ("model.weights_dtype", po::value<std::string>()->default_value("f32"), "random weights: dtype the weight matrices are held in, f32, bf16 or f16 (rounded from the f32 values; a checkpoint keeps its stored dtype); arithmetic accumulates in f32")
      ("model.compute_dtype", po::value<std::string>()->default_value("f32"), "operands of the matrix products, accumulated in f32 either way: f32 (weights widened exactly), or bf16 (weights held in bf16, activations rounded to bf16 before each product: oneDNN on the CPU's bf16 instructions, cuBLAS's bf16 GEMM on a GPU; logits within 3e-2 of f32's, docs/model.md)")
      ("model.backend", po::value<std::string>()->default_value("auto"), "auto (cuda when every rank has a GPU), cpu, cuda")
      ("model.threads", po::value<long>()->default_value(1), "OpenBLAS threads per rank (results do not depend on it)")
      ("run.epochs", po::value<long>()->default_value(4), "epochs (with workload.prompts, unless given: until every prompt is answered)")
      ("run.epoch_seconds", po::value<double>()->default_value(1.0), "seconds of traffic per epoch")
      ("run.strategy", po::value<std::string>()->default_value("full"), "balancing: none, new_only, full, upper_bound, move_aware")
      ("run.balance_quality", po::value<double>()->default_value(0.75), "rule 2 threshold (Petals' default 0.75; paper 0.99)")
      ("run.check", po::value<std::string>()->default_value("every_epoch"), "when servers check rule 2: every_epoch, or random (each after U(0, 2*mean_check_epochs) epochs)")
      ("run.mean_check_epochs", po::value<double>()->default_value(1.0), "mean epochs between checks for check = random")
      ("run.placement_time_limit", po::value<double>()->default_value(1.0), "upper_bound: seconds for the optimal placement")
      ("run.move_horizon", po::value<double>()->default_value(30.0), "move_aware: seconds of traffic over which a move's gain is counted against its reload (measured throughput x measured load time)")
      ("run.move_min_interval", po::value<double>()->default_value(5.0), "move_aware: seconds of traffic a rank that moved stays where it is")
      ("run.move_min_gain", po::value<double>()->default_value(0.05), "move_aware: least relative gain in swarm throughput a plan must promise; measured throughputs vary by a few percent from epoch to epoch, and a smaller gain is noise")
      ("run.seed", po::value<std::uint64_t>()->default_value(1), "seed of the workload, churn and balancing draws")
      ("run.transport", po::value<std::string>()->default_value("auto"), "activations: auto (nccl on GPUs, else mpi), mpi, nccl")
      ("run.comm_timeout", po::value<double>()->default_value(120.0), "seconds before a silent peer ends the job")
      ("run.trace", po::value<std::string>()->default_value(""), "HDF5 trace (rank 0)")
      ("servers.span", po::value<long>()->default_value(0), "blocks per server (0: ceil(2 * layers / ranks), two replicas per block)")
      ("servers.classes", po::value<std::string>()->default_value(""), "device class per rank, e.g. 'fast, fast, slow' (cycled over ranks)")
      ("servers.max_batch_tokens", po::value<long>()->default_value(2048), "tokens of one forward at most: micro-batches are cut to it, longer prompts are prefilled in chunks (Petals' max_batch_size default, 2048)")
      ("servers.max_cache_mb", po::value<double>()->default_value(0.0), "KV-cache budget per rank in MiB (0: none); sessions beyond it wait for room")
      ("servers.memory_mb", po::value<double>()->default_value(0.0), "memory per rank in MiB for the weights (in the dtype held) and the KV caches (servers.max_cache_mb, else the workload's sessions at full length) (0: unchecked); a span that does not fit is rejected")
      ("workload.prompt_tokens", po::value<long>()->default_value(16), "prompt length")
      ("workload.new_tokens", po::value<long>()->default_value(8), "tokens generated per session")
      ("workload.batch", po::value<long>()->default_value(1), "sequences per session, decoded in lockstep")
      ("workload.concurrency", po::value<long>()->default_value(4), "closed loop: sessions in flight")
      ("workload.arrival", po::value<std::string>()->default_value("closed"), "closed (keep concurrency sessions in flight), poisson, or batch (workload.sessions at the start; the job ends when all are done)")
      ("workload.rate", po::value<double>()->default_value(2.0), "poisson: new sessions per second")
      ("workload.sessions", po::value<long>()->default_value(64), "batch: sessions")
      ("workload.prompts", po::value<std::string>()->default_value(""), "batch inference: JSON Lines file, one {\"id\", \"tokens\", \"max_new_tokens\"[, \"stop_at_eos\"]} a line; workload.concurrency of them in flight")
      ("workload.outputs", po::value<std::string>()->default_value(""), "with workload.prompts: JSON Lines answers {\"id\", \"tokens\"} in input order, written whole at the end or not at all")
      ("dispatch.policy", po::value<std::string>()->default_value("shortest"), "shortest (each session takes the shortest-latency route, as Petals' clients) or a dispatch policy over capacity routes: static, round_robin, consistent_hash, bounded_hash, self_fixed, self_gss, self_factoring, self_weighted_factoring, self_tapering, work_stealing, diffusion1, diffusion2, power_of_two")
      ("dispatch.max_routes", po::value<long>()->default_value(0), "routes (workers) the capacity is split into at most (0: 2 x ranks)")
      ("dispatch.hash.virtual_nodes", po::value<long>()->default_value(100), "points per route on the consistent-hashing ring")
      ("dispatch.hash.eps", po::value<double>()->default_value(0.25), "bounded_hash: cap = ceil((1 + eps) m / n)")
      ("dispatch.self.chunk", po::value<long>()->default_value(4), "self_fixed: sessions per chunk")
      ("dispatch.self.min_chunk", po::value<long>()->default_value(1), "smallest chunk of the shrinking rules")
      ("dispatch.self.tapering_alpha", po::value<double>()->default_value(1.3), "self_tapering: standard deviations of slack")
      ("dispatch.stealing.steal_half", po::value<bool>()->default_value(false), "work_stealing: take half the victim's queue")
      ("dispatch.diffusion.period_s", po::value<double>()->default_value(0.2), "diffusion1/2: seconds between load-exchange rounds")
      ("dispatch.diffusion.beta", po::value<double>()->default_value(1.8), "diffusion2: beta in (0, 2)")
      ("dispatch.choices.choices", po::value<long>()->default_value(2), "power_of_two: routes probed per session")
      ("churn.leaves", po::value<std::string>()->default_value(""), "scheduled leaves 'EPOCH RANK, ...': RANK stops serving at the boundary before EPOCH (epochs count from 1)")
      ("churn.joins", po::value<std::string>()->default_value(""), "scheduled (re)joins 'EPOCH RANK, ...'")
      ("churn.leave_probability", po::value<double>()->default_value(0.0), "chance an online server leaves at a boundary")
      ("churn.join_probability", po::value<double>()->default_value(0.0), "chance an offline server joins at a boundary");
  po::options_description all;
  all.add(program).add(keys);
  return all;
}

JobConfig load_config(const JobFile& job, int world) {
  JobConfig c;
  c.model_dir = job.get<std::string>("model.dir");
  if (job.has("model-dir")) c.model_dir = job.get<std::string>("model-dir");
  c.hidden_size = static_cast<int>(job.integer("model.hidden_size", 1, 1 << 16));
  c.intermediate_size = static_cast<int>(job.integer("model.intermediate_size", 1, 1 << 18));
  c.layers = static_cast<int>(job.integer("model.layers", 1, 4096));
  c.heads = static_cast<int>(job.integer("model.heads", 1, 1024));
  c.kv_heads = static_cast<int>(job.integer("model.kv_heads", 1, 1024));
  c.head_dim = static_cast<int>(job.integer("model.head_dim", 0, 4096));
  c.vocab_size = static_cast<int>(job.integer("model.vocab_size", 2, 1 << 22));
  c.max_position = static_cast<int>(job.integer("model.max_position", 1, 1 << 22));
  c.rope_theta = job.positive("model.rope_theta");
  c.rms_norm_eps = job.positive("model.rms_norm_eps");
  if (c.heads % c.kv_heads != 0) {
    job.fail("model.kv_heads", std::to_string(c.kv_heads), "must divide model.heads (" + std::to_string(c.heads) + ")");
  }
  if (c.head_dim == 0 && c.hidden_size % c.heads != 0) {
    job.fail("model.heads", std::to_string(c.heads),
             "must divide model.hidden_size (" + std::to_string(c.hidden_size) + ") unless model.head_dim is set");
  }
  if ((c.head_dim == 0 ? c.hidden_size / c.heads : c.head_dim) % 2 != 0) {
    job.fail("model.head_dim", std::to_string(c.head_dim), "the head dimension must be even (rotary embeddings)");
  }
  c.weights_seed = job.seed("model.seed");
  if (const std::string dtype = job.get<std::string>("model.weights_dtype"); dtype == "f32" || dtype == "bf16" || dtype == "f16") {
    c.weights_dtype = model::parse_dtype(dtype, "model.weights_dtype");
  } else {
    job.fail("model.weights_dtype", dtype, "must be f32, bf16 or f16");
  }
  c.eos_token_id = static_cast<int>(job.integer("model.eos_token_id", -1, c.vocab_size - 1));
  if (const std::string backend = job.get<std::string>("model.backend"); backend == "cpu" || backend == "cuda") {
    c.backend = model::parse_backend(backend);
  } else if (backend != "auto") {
    job.fail("model.backend", backend, "must be auto, cpu or cuda");
  }
  c.threads = static_cast<int>(job.integer("model.threads", 1, 1024));
  if (const std::string compute = job.get<std::string>("model.compute_dtype"); compute == "f32" || compute == "bf16") {
    c.compute_dtype = model::parse_dtype(compute, "model.compute_dtype");
  } else {
    job.fail("model.compute_dtype", compute, "must be f32 or bf16");
  }

  c.epochs = static_cast<int>(job.integer("run.epochs", 1, 1000000));
  c.workload.prompts = job.get<std::string>("workload.prompts");
  c.workload.outputs = job.get<std::string>("workload.outputs");
  if (!c.workload.prompts.empty() && job.defaulted("run.epochs")) c.epochs = JobConfig::kUntilDone;
  c.epoch_seconds = job.positive("run.epoch_seconds");
  const std::string strategy = job.get<std::string>("run.strategy");
  const auto kind = parse_strategy(strategy);
  if (!kind) job.fail("run.strategy", strategy, "must be none, new_only, full, upper_bound or move_aware");
  c.strategy = *kind;
  c.balance_quality = job.non_negative("run.balance_quality");
  const std::string check = job.get<std::string>("run.check");
  if (check == "every_epoch") {
    c.check = CheckMode::every_boundary;
  } else if (check == "random") {
    c.check = CheckMode::random;
  } else {
    job.fail("run.check", check, "must be every_epoch or random");
  }
  c.mean_check_epochs = job.positive("run.mean_check_epochs");
  c.placement_time_limit = job.in_range("run.placement_time_limit", 0, 3600);
  c.move_horizon = job.in_range("run.move_horizon", 0, 1e9);
  c.move_min_interval = job.in_range("run.move_min_interval", 0, 1e9);
  c.move_min_gain = job.in_range("run.move_min_gain", 0, 10);
  c.seed = job.seed("run.seed");
  const std::string transport = job.get<std::string>("run.transport");
  c.transport = comm::parse_transport_kind(transport);
  if (!c.transport && transport != "auto") {
    job.fail("run.transport", transport, "must be auto, mpi or nccl");
  }
  // Up to 11.6 days: beyond some 9e9 s the deadline overflows the clock's nanoseconds.
  c.comm_timeout = job.in_range("run.comm_timeout", 1e-3, 1e6);
  c.trace = job.get<std::string>("run.trace");
  if (job.has("trace")) c.trace = job.get<std::string>("trace");
  c.quiet = job.has("quiet");

  const int blocks_hint = c.model_dir.empty() ? c.layers : 1 << 20;  // checked again against the checkpoint
  c.span = static_cast<int>(job.integer("servers.span", 0, 1 << 20));
  if (c.model_dir.empty() && c.span > c.layers) {
    job.fail("servers.span", std::to_string(c.span), "longer than the model (" + std::to_string(c.layers) + " layers)");
  }
  for (const auto& t : job.tables("class")) c.classes.push_back(device_class(job, t, blocks_hint));
  {
    // An empty item would shift every later rank's class: refused, as an unknown name is.
    const std::string list = job.get<std::string>("servers.classes");
    c.rank_classes = split_list(list);
    if (list.find_first_not_of(" \t") != std::string::npos &&
        c.rank_classes.size() != static_cast<std::size_t>(std::count(list.begin(), list.end(), ',') + 1)) {
      job.fail("servers.classes", list, "has an empty item (each rank's class is named, cycled over the ranks)");
    }
    if (c.rank_classes.size() > static_cast<std::size_t>(world)) {  // a job file for more ranks: said, not refused
      c.notes.push_back(job.where("servers.classes") + ": key 'servers.classes' names " +
                        std::to_string(c.rank_classes.size()) + " classes for " + std::to_string(world) +
                        " ranks; the last " + std::to_string(c.rank_classes.size() - static_cast<std::size_t>(world)) +
                        " are not used");
    }
  }
  for (const auto& name : c.rank_classes) {
    const bool known = std::any_of(c.classes.begin(), c.classes.end(), [&](const DeviceClass& d) { return d.name == name; });
    if (!known) job.fail("servers.classes", job.get<std::string>("servers.classes"), "no [class." + name + "] section");
  }
  // At most 2^40 MiB (an exabyte): byte counts stay exact in 64 bits.
  c.max_cache_mb = job.in_range("servers.max_cache_mb", 0.0, 1099511627776.0);
  c.max_batch_tokens = static_cast<int>(job.integer("servers.max_batch_tokens", 1, 1 << 20));
  c.memory_mb = job.in_range("servers.memory_mb", 0.0, 1099511627776.0);

  c.workload.prompt_tokens = static_cast<int>(job.integer("workload.prompt_tokens", 1, 1 << 20));
  c.workload.new_tokens = static_cast<int>(job.integer("workload.new_tokens", 1, 1 << 20));
  c.workload.batch = static_cast<int>(job.integer("workload.batch", 1, 1 << 16));
  c.workload.concurrency = static_cast<int>(job.integer("workload.concurrency", 1, 1 << 16));
  const std::string arrival = job.get<std::string>("workload.arrival");
  if (arrival == "closed") {
    c.workload.arrival = Arrival::closed;
  } else if (arrival == "poisson") {
    c.workload.arrival = Arrival::poisson;
  } else if (arrival == "batch") {
    c.workload.arrival = Arrival::batch;
  } else {
    job.fail("workload.arrival", arrival, "must be closed, poisson or batch");
  }
  // Far more sessions a second than a pipeline here serves; beyond, the client would only
  // spend its time queueing arrivals (at 1e300 its clock stops advancing).
  c.workload.rate = job.in_range("workload.rate", 1e-6, 1e4);
  c.workload.sessions = static_cast<int>(job.integer("workload.sessions", 1, 1 << 24));

  const std::string policy = job.get<std::string>("dispatch.policy");
  if (policy != "shortest") {
    const auto kind = dispatch::parse_policy(policy);
    if (!kind) job.fail("dispatch.policy", policy, "unknown policy (shortest, or one of docs/dispatch.md)");
    c.dispatch_policy = *kind;
  }
  c.max_routes = static_cast<int>(job.integer("dispatch.max_routes", 0, 1 << 20));
  dispatch::DispatchOptions& o = c.dispatch_options;
  o.message_latency_s = 0;  // real messages take their own time
  o.hash.virtual_nodes = static_cast<int>(job.integer("dispatch.hash.virtual_nodes", 1, 1 << 20));
  o.hash.eps = job.get<double>("dispatch.hash.eps");
  o.self.chunk = static_cast<std::size_t>(job.integer("dispatch.self.chunk", 1, 1 << 24));
  o.self.min_chunk = static_cast<std::size_t>(job.integer("dispatch.self.min_chunk", 1, 1 << 24));
  o.self.tapering_alpha = job.get<double>("dispatch.self.tapering_alpha");
  o.stealing.steal_half = job.get<bool>("dispatch.stealing.steal_half");
  // Real time here: a timer finer than a millisecond would re-arm at the same instant for ever.
  o.diffusion.period_s = job.in_range("dispatch.diffusion.period_s", 1e-3, 1e6);
  o.diffusion.beta = job.get<double>("dispatch.diffusion.beta");
  o.choices.choices = static_cast<std::size_t>(job.integer("dispatch.choices.choices", 1, 1 << 20));
  try {
    dispatch::validate(o);  // its messages name the option and the value
  } catch (const std::invalid_argument& e) {
    throw ConfigError(job.where() + ": " + e.what());
  }
  if (c.model_dir.empty() && c.workload.prompt_tokens + c.workload.new_tokens > c.max_position) {
    job.fail("workload.new_tokens", std::to_string(c.workload.new_tokens),
             "prompt_tokens + new_tokens exceed model.max_position (" + std::to_string(c.max_position) + ")");
  }

  if (c.max_batch_tokens < c.workload.batch) {
    job.fail("servers.max_batch_tokens", std::to_string(c.max_batch_tokens),
             "below workload.batch (" + std::to_string(c.workload.batch) +
                 "): a session's sequences run in one forward, one token each at least");
  }
  if (!c.workload.prompts.empty()) {
    if (c.workload.outputs.empty()) {
      job.fail("workload.outputs", "", "a prompts file (workload.prompts) needs a file for its answers");
    }
    std::error_code same_error;
    if (std::filesystem::equivalent(c.workload.prompts, c.workload.outputs, same_error)) {
      job.fail("workload.outputs", c.workload.outputs.string(), "is the prompts file: writing it would destroy it");
    }
    job.refuse_as_output(c.workload.outputs, "workload.outputs");
    if (c.workload.batch != 1) {
      job.fail("workload.batch", std::to_string(c.workload.batch), "must be 1 with a prompts file (each prompt is a session)");
    }
  } else if (!c.workload.outputs.empty()) {
    job.fail("workload.outputs", c.workload.outputs.string(), "needs workload.prompts");
  }
  c.churn.leaves = events(job, "churn.leaves", c.epochs, world);
  c.churn.joins = events(job, "churn.joins", c.epochs, world);
  c.churn.leave_probability = job.in_range("churn.leave_probability", 0, 1);
  c.churn.join_probability = job.in_range("churn.join_probability", 0, 1);
  check_schedule(job, c.churn, world);

  if (job.has("prompt-tokens")) {
    Generate g;
    const std::string list = job.get<std::string>("prompt-tokens");
    const auto items = split_list(list);
    if (items.size() != static_cast<std::size_t>(std::count(list.begin(), list.end(), ',')) + 1) {
      job.fail("prompt-tokens", list, "an empty item (a doubled, leading or trailing comma)");
    }
    for (const auto& item : items) {
      const double v = parse_number(job, "prompt-tokens", item);
      if (v < 0 || v != std::floor(v) || v >= 2147483647.0) job.fail("prompt-tokens", list, "token ids must be integers >= 0");
      g.prompt.push_back(static_cast<std::int32_t>(v));
    }
    if (g.prompt.empty()) job.fail("prompt-tokens", list, "no tokens");
    g.max_new_tokens = static_cast<int>(job.integer("max-new-tokens", 1, 1 << 20));
    if (job.has("dump-output")) g.dump_output = job.get<std::string>("dump-output");
    if (!c.workload.prompts.empty()) {
      job.fail("workload.prompts", c.workload.prompts.string(), "cannot be combined with --prompt-tokens (generation mode)");
    }
    c.generate = std::move(g);
  } else if (job.has("dump-output")) {
    job.fail("dump-output", job.get<std::string>("dump-output"), "needs --prompt-tokens");
  }
  return c;
}

}  // namespace swarm::job
