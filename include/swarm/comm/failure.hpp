#pragma once
// Ending a job on bad input or a failed peer: promptly, with one clear message, non-zero.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/comm/mpi_world.hpp"

namespace swarm::comm {

/// Prefix of every message this layer prints for the user.
inline constexpr std::string_view kProgramName = "swarm_pipe";

/// Collective: every rank reports whether its part of a step (reading the job file, loading
/// its blocks, ...) failed. Returns true on every rank when none failed. Otherwise rank 0 prints
/// ONE line per distinct error to stderr, naming the failing rank(s)
/// ("swarm_pipe: ranks 1,3: <error>"), and every rank returns false, so the job can exit
/// non-zero at once instead of deadlocking in the next collective. Costs one small
/// MPI_Iallgather when every rank succeeded.
[[nodiscard]] bool agree(const Communicator& comm, std::optional<std::string> my_error);

/// The lines agree() prints for these per-rank errors (nullopt: that rank succeeded), one per
/// distinct message in order of its first failing rank. Pure, for tests and for callers that
/// want the text elsewhere (e.g. a trace attribute).
[[nodiscard]] std::vector<std::string> failure_lines(std::span<const std::optional<std::string>> errors);

/// Prints "swarm_pipe: rank R: message" to stderr (a message that already starts with
/// "rank R: ", as this layer's errors do, is not prefixed twice) and ends every rank of the job with
/// MPI_Abort(comm, code). Use it when a failure is not collective (a peer died, a transfer timed
/// out): the other ranks may be blocked anywhere, and only MPI_Abort reaches them.
[[noreturn]] void abort_job(const Communicator& comm, std::string_view message, int code = 1);

}  // namespace swarm::comm
