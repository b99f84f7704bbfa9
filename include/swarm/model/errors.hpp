#pragma once
// Typed errors of the model library. Every what() is a complete, user-facing message: the job
// prints it and exits non-zero; nothing else needs to be added by the caller.
#include <stdexcept>

namespace swarm::model {

/// Base of every error thrown by swarm::model.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A config (config.json or an in-memory JSON text) has a missing, mistyped or unsupported key;
/// the message names the file, the key and the offending value.
class ConfigError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// A checkpoint is unreadable, corrupt or does not match its config: a missing tensor, a wrong
/// shape or dtype, a truncated file. The message names the file and the tensor (and the expected
/// vs found shape where that applies).
class CheckpointError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// Weights or KV cache do not fit in host or device memory; states needed vs available bytes.
class OutOfMemoryError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// The sessions' KV caches would outgrow the budget the caller set (ExecutorOptions::
/// max_cache_bytes), though memory itself may not have run out.
class CacheBudgetError : public OutOfMemoryError {
 public:
  using OutOfMemoryError::OutOfMemoryError;
};

/// A CUDA or cuBLAS call failed; names the device, file:line and the failing statement.
class DeviceError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// The caller broke a precondition: a block outside the loaded span, a batch size that differs
/// from the session's, a token id outside the vocabulary, the CUDA backend without a GPU, ...
class UsageError : public ModelError {
 public:
  using ModelError::ModelError;
};

}  // namespace swarm::model
