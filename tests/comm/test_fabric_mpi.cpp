// The MPI fabric under mpiexec (2 and 4 ranks): the cases every fabric must pass.
#include "fabric_cases.hpp"
#include "mpi_test_main.hpp"
#include "swarm/comm/transport.hpp"

namespace swarm::comm {
namespace {

std::unique_ptr<Fabric> make(std::size_t max_header = 64 * 1024) {
  FabricOptions options;
  options.max_header_bytes = max_header;
  options.timeout = Seconds(20.0);
  const Communicator& comm = testing::world().comm();
  return make_mpi_fabric(comm, make_transport(TransportKind::mpi, comm, 0, {Seconds(20.0)}), options);
}

TEST(MpiFabric, EveryPairInOrder) {
  auto fabric = make();
  cases::every_pair_in_order(*fabric, 40);  // more packets a pair than receives posted ahead
}

TEST(MpiFabric, Collectives) {
  auto fabric = make();
  cases::collectives(*fabric);
}

TEST(MpiFabric, HeaderLimit) {
  auto fabric = make(300);
  cases::header_limit(*fabric, 300);
}

TEST(MpiFabric, PoolReuse) {
  auto fabric = make();
  cases::pool_reuse(*fabric);
}

}  // namespace
}  // namespace swarm::comm
