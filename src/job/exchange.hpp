#pragma once
// One tick of the pipeline: every rank hands over the messages it has for other ranks and gets
// the messages other ranks have for it. Collective and bulk synchronous: headers travel with
// MPI_Alltoall(v), payloads over the activation transport (NCCL or MPI point-to-point).
#include <vector>

#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/transport.hpp"
#include "swarm/job/protocol.hpp"

namespace swarm::job {

struct Message {
  int peer = 0;  // destination when sending, source when received
  StepHeader header;
  std::vector<float> payload;  // host memory
};

class Exchange {
 public:
  /// `staging`: the transport needs device memory (NCCL), so payloads are copied through it.
  Exchange(const comm::Communicator& comm, comm::Transport& transport, int hidden_size, bool staging);

  /// Sends `outgoing` and returns what arrived, in (source, posting order). Messages to this
  /// rank itself are delivered without a transfer. Collective over the communicator.
  [[nodiscard]] std::vector<Message> run(std::vector<Message> outgoing);

  /// Per-source bytes and seconds of the last run() (for link measurements).
  [[nodiscard]] double last_bytes_received() const { return last_bytes_; }
  [[nodiscard]] double last_seconds() const { return last_seconds_; }

 private:
  void transfer(std::vector<Message>& out, std::vector<Message>& in);

  const comm::Communicator& comm_;
  comm::Transport& transport_;
  int hidden_;
  bool staging_;
  double last_bytes_ = 0, last_seconds_ = 0;
};

/// The tick's control word: MPI_Allreduce(MAX) of every rank's contribution, with the
/// communicator's timeout.
[[nodiscard]] TickControl agree_tick(const comm::Communicator& comm, TickControl mine);

}  // namespace swarm::job
