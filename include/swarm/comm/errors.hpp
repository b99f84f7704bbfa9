#pragma once
// Typed errors of the comm layer. Every what() is a complete, user-facing message that already
// names the rank (and the peer, size and call where that applies): the job prints it as is, or
// hands it to abort_job(), and exits non-zero.
#include <stdexcept>

namespace swarm::comm {

/// Base of every error thrown by swarm::comm.
class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An MPI call returned an error (MPI_ERRORS_RETURN is set on every communicator we own);
/// the message holds rank, file:line, the statement and MPI_Error_string.
class MpiError : public CommError {
 public:
  using CommError::CommError;
};

/// A peer did not answer in time: a transfer, a control message or a collective that did not
/// complete before its deadline. Names the peer (or the collective) and the size.
class TimeoutError : public CommError {
 public:
  using CommError::CommError;
};

/// A transfer failed for another reason than time: an NCCL asynchronous error, a message of the
/// wrong size, a communicator that was aborted.
class TransferError : public CommError {
 public:
  using CommError::CommError;
};

/// A CUDA call failed, or a device feature was used in a build without CUDA.
class DeviceError : public CommError {
 public:
  using CommError::CommError;
};

/// The caller broke a precondition: a peer outside the world, a host buffer given to NCCL, an
/// unknown ticket, an inconsistent SLURM_LOCALID.
class UsageError : public CommError {
 public:
  using CommError::CommError;
};

}  // namespace swarm::comm
