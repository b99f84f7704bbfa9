#pragma once
// The MPI transport: Isend/Irecv on its own duplicate of the world communicator (Tag::activation)
// completed by MPI_Test polling with a deadline. Host buffers; device buffers only when the MPI
// library is CUDA-aware (Open MPI's MPIX_Query_cuda_support).
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "swarm/comm/transport.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::comm {

/// True when the MPI library was built CUDA-aware and says so at run time.
[[nodiscard]] bool mpi_cuda_aware() noexcept;

class MpiTransport final : public Transport {
 public:
  /// Collective over `comm` (it is duplicated).
  explicit MpiTransport(const Communicator& comm, TransportOptions options = {});
  ~MpiTransport() override;

  [[nodiscard]] std::string_view name() const noexcept override { return "mpi"; }
  [[nodiscard]] Ticket post_send(int peer, ConstBuffer data) override;
  [[nodiscard]] Ticket post_recv(int peer, Buffer data) override;
  [[nodiscard]] bool test(Ticket ticket) override;
  [[nodiscard]] bool ready_for(int peer, Direction direction) const override;
  [[nodiscard]] std::size_t in_flight() const noexcept override { return pending_.size(); }

 private:
  struct Pending {
    int peer = -1;
    bool is_send = false;
    std::size_t elements = 0;
    std::vector<MPI_Request> requests;  // one per chunk
    Clock::time_point posted;
    unsigned polls = 0;
  };

  [[nodiscard]] Ticket post(int peer, bool is_send, float* data, std::size_t elements, MemoryLocation location);
  [[nodiscard]] bool poll_requests(Pending& pending);
  [[nodiscard]] static std::size_t received_elements(const std::vector<MPI_Status>& statuses);
  [[noreturn]] void fail(Pending& pending, bool timed_out, const std::string& reason);
  [[nodiscard]] std::string describe(const Pending& pending) const;

  Communicator comm_;
  TransportOptions options_;
  bool cuda_aware_ = false;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::vector<MPI_Status> statuses_;  // scratch of poll_requests
};

}  // namespace swarm::comm
