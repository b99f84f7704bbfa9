#pragma once
// The throughput a server announces (Petals' get_server_throughput), written once for the
// simulator (modelled devices) and the MPI job (measured ones).

namespace swarm {

/// Petals' penalty for a server reachable only through a relay.
inline constexpr double kRelayPenalty = 0.2;

/// Compute: tokens/s through one block divided by the blocks a request is expected to use on
/// this server, E[Uniform{1..k}] = (k + 1) / 2.
[[nodiscard]] constexpr double compute_throughput(double block_tokens_per_s, int span_blocks) {
  return block_tokens_per_s / ((span_blocks + 1) / 2.0);
}

/// Network: min(download, upload) in bits/s over the bits of one token's activations
/// (hidden_size * 16 for 16-bit activations), times the relay penalty.
[[nodiscard]] constexpr double network_throughput(double link_bits_per_s, int hidden_size, bool relay) {
  return link_bits_per_s / (hidden_size * 16.0) * (relay ? kRelayPenalty : 1.0);
}

[[nodiscard]] constexpr double announced_throughput(double compute, double network) {
  return compute < network ? compute : network;
}

}  // namespace swarm
