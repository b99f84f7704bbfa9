// MPI runtime, communicators and the MPI check macro.
#include "swarm/comm/mpi_world.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "swarm/comm/control.hpp"
#include "swarm/comm/errors.hpp"
#include "wait.hpp"

namespace swarm::comm {
namespace detail {

int world_rank() noexcept {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return -1;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void check_mpi(int code, const char* statement, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) std::snprintf(text, sizeof text, "MPI error %d", code);
  throw MpiError(rank_prefix() + file + ":" + std::to_string(line) + ": " + statement + " failed: " + text);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Communicator
// ---------------------------------------------------------------------------------------------
Communicator::Communicator(MPI_Comm owned, Seconds timeout) : comm_(owned), timeout_(timeout) {
  // ERRORS_RETURN: a failing call must come back to us with a code, so that SWARM_MPI_CHECK can
  // name the rank and the statement instead of MPI killing the job with a generic banner.
  SWARM_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  SWARM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  SWARM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

Communicator Communicator::duplicate(MPI_Comm parent, Seconds timeout) {
  MPI_Comm copy = MPI_COMM_NULL;
  SWARM_MPI_CHECK(MPI_Comm_dup(parent, &copy));
  return Communicator(copy, timeout);
}

Communicator Communicator::split_shared(MPI_Comm parent, Seconds timeout) {
  int rank = 0;
  SWARM_MPI_CHECK(MPI_Comm_rank(parent, &rank));
  MPI_Comm node = MPI_COMM_NULL;
  SWARM_MPI_CHECK(MPI_Comm_split_type(parent, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  return Communicator(node, timeout);
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_),
      timeout_(other.timeout_) {}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    reset();
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    rank_ = other.rank_;
    size_ = other.size_;
    timeout_ = other.timeout_;
  }
  return *this;
}

Communicator::~Communicator() { reset(); }

void Communicator::reset() noexcept {
  if (comm_ == MPI_COMM_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);  // a destructor cannot report; a failure leaks one handle
  comm_ = MPI_COMM_NULL;
}

// ---------------------------------------------------------------------------------------------
// MpiWorld
// ---------------------------------------------------------------------------------------------
MpiWorld::Runtime::Runtime(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    const int code = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) throw MpiError("swarm_pipe: MPI_Init_thread failed with code " + std::to_string(code));
    owns_ = true;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_FUNNELED) {
    if (owns_) MPI_Finalize();
    throw MpiError("swarm_pipe: the MPI library provides thread level " + std::to_string(provided) +
                   ", below MPI_THREAD_FUNNELED (helper threads beside the MPI thread need it)");
  }
}

MpiWorld::Runtime::~Runtime() {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (std::uncaught_exceptions() > 0) {
    // An exception is leaving main through the world: other ranks may be blocked in a collective
    // with us, and MPI_Finalize would then wait for them forever. End the job instead.
    std::fprintf(stderr, "swarm_pipe: rank %d: an exception escaped main; aborting the job\n", detail::world_rank());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
}

MpiWorld::MpiWorld(int* argc, char*** argv)
    : runtime_(argc, argv),
      comm_(Communicator::duplicate(MPI_COMM_WORLD)),
      node_comm_(Communicator::split_shared(comm_.get())) {
  // Node numbering: every rank learns the world rank of its node's leader, then all compare.
  const int leader = bcast_value(node_comm_, comm_.rank(), 0);
  const std::vector<int> leaders = allgather_values(comm_, leader);
  const NodeIndex node = node_index(comm_.rank(), leaders);

  // Local rank: SLURM_LOCALID when every rank of the node has a distinct one, else the split.
  const char* env = std::getenv("SLURM_LOCALID");
  const std::optional<int> my_id = parse_local_id(env ? std::optional<std::string_view>(env) : std::nullopt);
  const std::vector<int> raw_ids = allgather_values(node_comm_, my_id.value_or(-1));
  std::vector<std::optional<int>> ids;
  ids.reserve(raw_ids.size());
  for (int id : raw_ids) ids.push_back(id >= 0 ? std::optional<int>(id) : std::nullopt);
  const int local_rank = choose_local_rank(node_comm_.rank(), ids);

  layout_ = WorldLayout(comm_.rank(), comm_.size(), local_rank, node_comm_.size(), node.node, node.nodes);
}

void MpiWorld::set_timeout(Seconds timeout) noexcept {
  comm_.set_timeout(timeout);
  node_comm_.set_timeout(timeout);
}

}  // namespace swarm::comm
