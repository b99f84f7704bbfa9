#pragma once
// Internal seam between the common code and the NCCL/CUDA sources: defined in cuda/ when
// SWARM_HAVE_CUDA, by stubs in stub/ otherwise, so no common file needs an #if.
#include <memory>

#include "swarm/comm/transport.hpp"

namespace swarm::comm::detail {

[[nodiscard]] bool nccl_built() noexcept;
[[nodiscard]] std::unique_ptr<Transport> make_nccl_transport(const Communicator& comm, int device,
                                                             const TransportOptions& options);

}  // namespace swarm::comm::detail
