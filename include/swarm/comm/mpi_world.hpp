#pragma once
// The MPI world: MPI_Init_thread/MPI_Finalize as RAII, move-only communicators with
// MPI_ERRORS_RETURN, the rank layout, and SWARM_MPI_CHECK.
//
// Every blocking helper of this library (control messages, collectives, transfers) waits with a
// deadline: the communicator's timeout(). A peer that died or never answers turns into a
// TimeoutError naming it, never into a hang.
#include <mpi.h>

#include <chrono>

#include "swarm/comm/layout.hpp"

/// Checks the return code of an MPI call; on error throws MpiError with the world rank,
/// file:line, the statement and MPI_Error_string. Only meaningful on communicators with
/// MPI_ERRORS_RETURN (all of ours), since the default handler aborts before returning.
#define SWARM_MPI_CHECK(stmt) ::swarm::comm::detail::check_mpi((stmt), #stmt, __FILE__, __LINE__)

namespace swarm::comm {

using Seconds = std::chrono::duration<double>;
/// Deadline of every wait unless set otherwise: long enough for a slow rank reloading a span,
/// short enough that a dead peer does not eat an allocation.
inline constexpr Seconds kDefaultTimeout{120.0};

namespace detail {
void check_mpi(int code, const char* statement, const char* file, int line);
/// This process's rank in MPI_COMM_WORLD, or -1 before MPI_Init / after MPI_Finalize.
[[nodiscard]] int world_rank() noexcept;
}  // namespace detail

/// Owns one MPI_Comm (never MPI_COMM_WORLD itself) and frees it; move-only. Carries the
/// deadline used by every blocking helper on it.
class Communicator {
 public:
  Communicator() noexcept = default;
  /// MPI_Comm_dup of `parent`, with MPI_ERRORS_RETURN set on the copy.
  [[nodiscard]] static Communicator duplicate(MPI_Comm parent, Seconds timeout = kDefaultTimeout);
  /// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): the ranks that share this node's memory.
  [[nodiscard]] static Communicator split_shared(MPI_Comm parent, Seconds timeout = kDefaultTimeout);
  /// A duplicate of this communicator with the same timeout: a separate matching space, so a
  /// library's traffic (e.g. the transport's) can never be received by a probe of the job's.
  [[nodiscard]] Communicator duplicate() const { return duplicate(comm_, timeout_); }

  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&& other) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator();

  [[nodiscard]] MPI_Comm get() const noexcept { return comm_; }
  [[nodiscard]] bool valid() const noexcept { return comm_ != MPI_COMM_NULL; }
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int size() const noexcept { return size_; }
  [[nodiscard]] Seconds timeout() const noexcept { return timeout_; }
  void set_timeout(Seconds timeout) noexcept { timeout_ = timeout; }

 private:
  Communicator(MPI_Comm owned, Seconds timeout);
  void reset() noexcept;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 0;
  Seconds timeout_ = kDefaultTimeout;
};

/// The process's MPI runtime and world. Initialises MPI (MPI_THREAD_FUNNELED: only the main
/// thread calls MPI) unless something else already did, and then also leaves MPI_Finalize to
/// that owner. Not copyable or movable: there is one per process, created first in main().
class MpiWorld {
 public:
  MpiWorld() : MpiWorld(nullptr, nullptr) {}
  MpiWorld(int& argc, char**& argv) : MpiWorld(&argc, &argv) {}
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  ~MpiWorld() = default;

  /// A duplicate of MPI_COMM_WORLD for the job's control messages and collectives.
  [[nodiscard]] const Communicator& comm() const noexcept { return comm_; }
  [[nodiscard]] Communicator& comm() noexcept { return comm_; }
  /// The ranks sharing this node (MPI_COMM_TYPE_SHARED).
  [[nodiscard]] const Communicator& node_comm() const noexcept { return node_comm_; }
  [[nodiscard]] const WorldLayout& layout() const noexcept { return layout_; }
  /// Sets the deadline of every blocking helper on comm() and node_comm().
  void set_timeout(Seconds timeout) noexcept;

 private:
  MpiWorld(int* argc, char*** argv);

  /// Initialises MPI in its constructor and finalises it in its destructor when it did the
  /// initialising. Declared first so that it is destroyed last, after the communicators.
  class Runtime {
   public:
    Runtime(int* argc, char*** argv);
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    ~Runtime();

   private:
    bool owns_ = false;
  };

  Runtime runtime_;
  Communicator comm_;
  Communicator node_comm_;
  WorldLayout layout_;
};

}  // namespace swarm::comm
