// Agreement on failures (collective) and abort of the whole job (not collective).
#include "swarm/comm/failure.hpp"

#include <cstdio>
#include <cstdlib>
#include <algorithm>

#include "swarm/comm/control.hpp"
#include "wait.hpp"

namespace swarm::comm {
namespace {

// Gathered errors carry a one-byte marker so that an empty message still counts as a failure.
constexpr char kFailed = '!';

[[nodiscard]] std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i) text += ',';
    text += std::to_string(ranks[i]);
  }
  return text;
}

}  // namespace

std::vector<std::string> failure_lines(std::span<const std::optional<std::string>> errors) {
  std::vector<std::pair<std::string, std::vector<int>>> distinct;  // in order of first failing rank
  for (std::size_t rank = 0; rank < errors.size(); ++rank) {
    if (!errors[rank]) continue;
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == *errors[rank]; });
    if (it == distinct.end()) it = distinct.insert(distinct.end(), {*errors[rank], {}});
    it->second.push_back(static_cast<int>(rank));
  }
  std::vector<std::string> lines;
  for (const auto& [message, ranks] : distinct)
    lines.push_back(std::string(kProgramName) + ": " + rank_list(ranks) + ": " + message);
  return lines;
}

bool agree(const Communicator& comm, std::optional<std::string> my_error) {
  // Fast path: one small allreduce tells every rank whether anybody failed.
  const int failed = my_error ? 1 : 0;
  const std::vector<int> flags = allgather_values(comm, failed);
  if (std::find(flags.begin(), flags.end(), 1) == flags.end()) return true;

  const std::string mine = my_error ? kFailed + *my_error : std::string();
  const std::vector<std::string> gathered = gather_strings(comm, mine, 0);
  if (comm.rank() == 0) {
    std::vector<std::optional<std::string>> errors;
    for (const std::string& text : gathered)
      errors.push_back(text.empty() ? std::nullopt : std::optional<std::string>(text.substr(1)));
    for (const std::string& line : failure_lines(errors)) std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
  return false;
}

void abort_job(const Communicator& comm, std::string_view message, int code) {
  const int rank = detail::world_rank();
  const std::string own_prefix = "rank " + std::to_string(rank) + ": ";
  if (message.starts_with(own_prefix)) message.remove_prefix(own_prefix.size());
  std::fprintf(stderr, "%.*s: rank %d: %.*s\n", static_cast<int>(kProgramName.size()), kProgramName.data(), rank,
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  if (rank < 0) std::_Exit(code);  // no MPI: nothing else to bring down
  MPI_Abort(comm.valid() ? comm.get() : MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest if it did
}

}  // namespace swarm::comm
