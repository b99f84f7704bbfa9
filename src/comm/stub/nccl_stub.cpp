// The NCCL seam in a build without CUDA: no NCCL transport (make_transport says so first).
#include "../nccl_factory.hpp"
#include "../wait.hpp"
#include "swarm/comm/errors.hpp"

namespace swarm::comm::detail {

bool nccl_built() noexcept { return false; }

std::unique_ptr<Transport> make_nccl_transport(const Communicator&, int, const TransportOptions&) {
  throw UsageError(rank_prefix() + "this build has no NCCL transport (configure with SWARM_CUDA=ON)");
}

}  // namespace swarm::comm::detail
