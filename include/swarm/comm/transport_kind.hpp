#pragma once
// Which activation transport a job uses: a plain enum without MPI or NCCL, so that the job's
// configuration (pure) can name it.
#include <optional>
#include <string_view>

namespace swarm::comm {

enum class TransportKind { mpi, nccl };

[[nodiscard]] constexpr std::string_view to_string(TransportKind kind) noexcept {
  return kind == TransportKind::mpi ? "mpi" : "nccl";
}
[[nodiscard]] constexpr std::optional<TransportKind> parse_transport_kind(std::string_view text) noexcept {
  if (text == "mpi") return TransportKind::mpi;
  if (text == "nccl") return TransportKind::nccl;
  return std::nullopt;
}

}  // namespace swarm::comm
