// Two-rank ping-pong: the job's communication layers against raw point-to-point of the same
// sizes, measured in the same run, alternating per repetition so that drift hits both alike.
// Output follows nccl-tests: '#' header with units, fixed columns, a #wrong correctness column,
// a PASS/FAIL footer. Goal: the measured layer >= 90% of raw point-to-point bandwidth.
//
//   mpiexec -n 2 bench_transport [--layer transport|fabric] [--transport mpi|nccl]
//       [--min-bytes 4K] [--max-bytes 64M] [--factor 2] [--iters 0 (auto)] [--warmup 3] [--reps 5]
//       [--stat median|min] [--goal 0.9] [--goal-min-bytes 64K] [--header-bytes 64]
//       [--max-header-bytes 64K] [--timeout 60]
//
// What is measured (one round trip: rank 0 sends, rank 1 sends back what it received):
//   --layer transport  Transport::send/recv of the rows (the transport alone);
//   --layer fabric     the job's data plane: rank 0 posts a packet (a --header-bytes header and
//                      the rows, pooled) to an MPI fabric, rank 1 polls it and posts it back with
//                      the same rows and header, rank 0 polls it and sends those rows next time;
//                      polling waits with Fabric::wait as the job's ranks do. --max-header-bytes
//                      is the fabric's FabricOptions::max_header_bytes (default: the fabric's).
// The raw reference is MPI_Send/MPI_Recv of host buffers, or with --transport nccl (device rows,
// a GPU per rank) ncclSend/ncclRecv of device buffers on a communicator and stream of its own.
//
// Columns: size (B) and count (floats) of the rows (a header is not counted); iters, round
// trips per repetition (auto: about 50 ms on the raw path); raw and xprt (fab with --layer
// fabric) time, one-way microseconds: half the median (or, with --stat min, the best) round
// trip over --reps repetitions; GB/s = size / one-way time / 1e9; ratio = measured GB/s / raw
// GB/s; #wrong, elements received that differ from the pattern sent, over both methods, both
// ranks and all repetitions (a fabric packet with the wrong header, sender or size counts as
// all its elements wrong). Other processes on the cores only ever add time, so `min` estimates
// what the link can do on a shared machine; `median` what a run typically sees. The footer's
// ratio is over the sizes >= --goal-min-bytes; PASS needs #wrong 0 and, unless --goal 0, a
// median ratio >= --goal.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/fabric.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/transport.hpp"
#include "raw_nccl.hpp"

namespace {

namespace po = boost::program_options;
using namespace swarm::comm;
using swarm::bench::RawNccl;

enum class Layer { transport, fabric };

struct Config {
  Layer layer = Layer::transport;
  TransportKind transport = TransportKind::mpi;
  std::size_t min_bytes = 4096;
  std::size_t max_bytes = std::size_t{64} << 20;
  std::size_t factor = 2;
  int iters = 0;  // 0: about 50 ms of round trips per size and repetition, in [10, 2000]
  int warmup = 3;
  int reps = 5;
  bool best = false;  // --stat min: best repetition (robust on a machine shared with other work)
  double goal = 0.9;  // 0 disables the goal in PASS/FAIL
  std::size_t goal_min_bytes = std::size_t{64} << 10;
  std::size_t header_bytes = 64;  // fabric packets: the job's headers are small
  std::size_t max_header_bytes = FabricOptions{}.max_header_bytes;
  double timeout = 60.0;
};

/// "4096", "4K", "64M", "1G" (binary units).
[[nodiscard]] std::size_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  const unsigned long long value = std::stoull(text, &pos);
  const std::string unit = text.substr(pos);
  if (unit.empty()) return value;
  if (unit == "K" || unit == "k") return value << 10;
  if (unit == "M" || unit == "m") return value << 20;
  if (unit == "G" || unit == "g") return value << 30;
  throw po::error("bad size '" + text + "' (use e.g. 4096, 4K, 64M)");
}

/// Parses the options; the error text (or nullopt) feeds agree() so that all ranks stop together.
[[nodiscard]] std::optional<std::string> parse(int argc, char** argv, Config& config, bool& help) {
  std::string layer = "transport", transport = "mpi";
  std::string min_bytes = "4K", max_bytes = "64M", goal_min = "64K", stat = "median";
  std::string max_header = std::to_string(config.max_header_bytes >> 10) + "K";
  po::options_description options("bench_transport options");
  options.add_options()("help,h", "this text")(
      "layer,l", po::value(&layer)->default_value(layer), "transport (Transport::send/recv) or fabric (packets)")(
      "transport,t", po::value(&transport)->default_value(transport), "mpi (host buffers) or nccl (device buffers)")(
      "min-bytes,b", po::value(&min_bytes)->default_value(min_bytes), "smallest message")(
      "max-bytes,e", po::value(&max_bytes)->default_value(max_bytes), "largest message")(
      "factor,f", po::value(&config.factor)->default_value(config.factor), "size multiplier between rows")(
      "iters,n", po::value(&config.iters)->default_value(config.iters), "round trips per repetition (0: auto, ~50 ms)")(
      "warmup,w", po::value(&config.warmup)->default_value(config.warmup), "untimed round trips per size and method")(
      "reps,r", po::value(&config.reps)->default_value(config.reps), "repetitions")(
      "stat,s", po::value(&stat)->default_value(stat), "median or min over the repetitions")(
      "goal,g", po::value(&config.goal)->default_value(config.goal), "required measured/raw ratio (0: report only)")(
      "goal-min-bytes", po::value(&goal_min)->default_value(goal_min), "smallest size the goal applies to")(
      "header-bytes", po::value(&config.header_bytes)->default_value(config.header_bytes),
      "header of each fabric packet")(
      "max-header-bytes", po::value(&max_header)->default_value(max_header),
      "the fabric's largest header, the size of its receives posted ahead (the job's: from ranks and batch)")(
      "timeout", po::value(&config.timeout)->default_value(config.timeout), "transfer deadline in seconds");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
    if (vm.count("help")) {
      help = true;
      std::printf("%s\n", (std::ostringstream() << options).str().c_str());
      return std::nullopt;
    }
    if (layer != "transport" && layer != "fabric") return "--layer must be transport or fabric, not '" + layer + "'";
    config.layer = layer == "fabric" ? Layer::fabric : Layer::transport;
    const auto kind = parse_transport_kind(transport);
    if (!kind) return "--transport must be mpi or nccl, not '" + transport + "'";
    config.transport = *kind;
    if (stat != "median" && stat != "min") return "--stat must be median or min, not '" + stat + "'";
    config.best = stat == "min";
    config.min_bytes = parse_size(min_bytes);
    config.max_bytes = parse_size(max_bytes);
    config.goal_min_bytes = parse_size(goal_min);
    if (config.min_bytes < sizeof(float) || config.min_bytes > config.max_bytes)
      return "need 4 <= --min-bytes <= --max-bytes";
    if (config.factor < 2) return "--factor must be at least 2";
    if (config.iters < 0 || config.warmup < 0 || config.reps < 1) return "--iters, --warmup >= 0 and --reps >= 1";
    config.max_header_bytes = parse_size(max_header);
    if (config.header_bytes < sizeof(std::uint64_t) || config.header_bytes > config.max_header_bytes)
      return "need 8 <= --header-bytes <= --max-header-bytes";
  } catch (const std::exception& e) {
    return std::string("bench_transport: ") + e.what();
  }
  return std::nullopt;
}

[[nodiscard]] std::string seconds_text(Seconds seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds.count());
  return text;
}

[[nodiscard]] float pattern(std::size_t i, int salt) {
  return static_cast<float>((static_cast<std::uint32_t>(i) * 2654435761u + static_cast<std::uint32_t>(salt) * 40503u) &
                            0xFFFFFFu);
}

/// Send and receive memory for one size: host vectors, plus device copies for NCCL.
class Buffers {
 public:
  Buffers(std::size_t elements, bool device) : send_(elements), recv_(elements) {
    if (device) {
      send_device_ = DeviceBuffer(elements);
      recv_device_ = DeviceBuffer(elements);
    }
  }
  void fill(int salt) {
    for (std::size_t i = 0; i < send_.size(); ++i) send_[i] = pattern(i, salt);
    std::fill(recv_.begin(), recv_.end(), -1.0f);
    if (!send_device_.empty()) {
      send_device_.copy_from_host(send_);
      recv_device_.copy_from_host(recv_);
    }
  }
  [[nodiscard]] ConstBuffer send_view() const {
    return send_device_.empty() ? ConstBuffer::host(send_) : send_device_.buffer();
  }
  [[nodiscard]] Buffer recv_view() { return recv_device_.empty() ? Buffer::host(recv_) : recv_device_.buffer(); }
  /// What the echo side sends back: exactly what it received.
  [[nodiscard]] ConstBuffer echo_view() {
    return recv_device_.empty() ? ConstBuffer::host(recv_) : std::as_const(recv_device_).buffer();
  }
  [[nodiscard]] std::vector<float>& host_send() { return send_; }
  [[nodiscard]] std::vector<float>& host_recv() { return recv_; }
  [[nodiscard]] const float* device_send() const { return send_device_.data(); }
  [[nodiscard]] float* device_recv() { return recv_device_.data(); }
  /// Elements of the received buffer that differ from the pattern `salt`.
  [[nodiscard]] std::size_t wrong(int salt) {
    if (!recv_device_.empty()) recv_device_.copy_to_host(recv_);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < recv_.size(); ++i) bad += recv_[i] != pattern(i, salt);
    return bad;
  }

 private:
  std::vector<float> send_, recv_;
  DeviceBuffer send_device_, recv_device_;
};

/// The fabric's round trip for one size. Rank 0 posts a packet to rank 1, rank 1 posts back the
/// packet it received (header and rows as they came), and rank 0 sends the rows that came back
/// on the next round trip: the rows always come from the fabric's pool and return to it once
/// their send completed, so after the first round trips no message allocates rows. Every
/// round trip carries the pattern of start(); errors compound, so one check at the end of a
/// repetition covers all of its round trips.
class FabricTrip {
 public:
  FabricTrip(Fabric& fabric, std::size_t floats, std::size_t header_bytes, Seconds timeout)
      : fabric_(fabric), me_(fabric.rank()), peer_(1 - fabric.rank()), floats_(floats),
        header_bytes_(header_bytes), timeout_(timeout) {}

  /// Starts a repetition with the pattern `salt` (rank 0 writes it into pooled rows).
  void start(int salt) {
    salt_ = salt;
    sequence_ = 0;
    wrong_ = 0;
    if (me_ != 0) return;
    rows_ = Activations{};  // back to the pool first, so that take() reuses it
    rows_ = fabric_.pool().take(floats_);
    if (rows_.location() == MemoryLocation::host) {
      const std::span<float> host = rows_.host();
      for (std::size_t i = 0; i < floats_; ++i) host[i] = pattern(i, salt);
    } else {
      staging_.resize(floats_);
      for (std::size_t i = 0; i < floats_; ++i) staging_[i] = pattern(i, salt);
      swarm::bench::copy_to_device(rows_.data(), staging_);
    }
    header_.resize(header_bytes_);
    for (std::size_t i = sizeof(std::uint64_t); i < header_bytes_; ++i) header_[i] = header_byte(i);
  }

  /// One round trip; with `verify`, rank 1 also checks the rows it received (outside timing).
  void trip(bool verify = false) {
    if (me_ == 0) {
      std::memcpy(header_.data(), &sequence_, sizeof sequence_);
      fabric_.post({peer_, std::move(header_), std::move(rows_)});
      Packet back = receive();
      wrong_ += packet_wrong(back);
      header_ = std::move(back.header);
      header_.resize(header_bytes_);  // a wrong one was counted; the next still needs room
      rows_ = std::move(back.rows);
    } else {
      Packet p = receive();
      wrong_ += packet_wrong(p);
      if (verify) wrong_ += rows_wrong(p.rows);
      p.peer = peer_;
      fabric_.post(std::move(p));
    }
    ++sequence_;
  }

  /// Ends a repetition: one round trip that rank 1 verifies, rank 0 checks what came back, and
  /// both wait until their sends completed (so the next method starts on a quiet link).
  /// Returns this rank's wrong elements.
  [[nodiscard]] std::size_t finish() {
    trip(true);
    if (me_ == 0) wrong_ += rows_wrong(rows_);
    drain();
    return wrong_;
  }

 private:
  [[nodiscard]] std::byte header_byte(std::size_t i) const {
    return static_cast<std::byte>((i * 131 + static_cast<std::size_t>(salt_) * 7) & 0xFF);
  }

  // A wrong header, sender or size makes the whole packet wrong (it may not even have rows).
  [[nodiscard]] std::size_t packet_wrong(const Packet& p) const {
    bool ok = p.peer == peer_ && p.header.size() == header_bytes_ && p.rows.size() == floats_;
    std::uint64_t sequence = ~std::uint64_t{0};
    if (ok) std::memcpy(&sequence, p.header.data(), sizeof sequence);
    ok = ok && sequence == sequence_;
    for (std::size_t i = sizeof sequence; ok && i < header_bytes_; ++i) ok = p.header[i] == header_byte(i);
    return ok ? 0 : std::max<std::size_t>(floats_, 1);
  }

  [[nodiscard]] std::size_t rows_wrong(const Activations& rows) {
    if (rows.size() != floats_) return floats_;  // already counted by packet_wrong, but be safe
    std::span<const float> values;
    if (rows.location() == MemoryLocation::host) {
      values = rows.host();
    } else {
      staging_.resize(floats_);
      swarm::bench::copy_to_host(staging_, rows.data());
      values = staging_;
    }
    std::size_t bad = 0;
    for (std::size_t i = 0; i < floats_; ++i) bad += values[i] != pattern(i, salt_);
    return bad;
  }

  // Polls as the job's ranks do: poll(), and when nothing came, Fabric::wait.
  [[nodiscard]] Packet receive() {
    const double began = MPI_Wtime();
    for (unsigned polls = 1;; ++polls) {
      if (std::optional<Packet> p = fabric_.poll()) return std::move(*p);
      if (polls % 32 == 0 && MPI_Wtime() - began > timeout_.count()) {
        throw TimeoutError("rank " + std::to_string(me_) + ": no packet from rank " + std::to_string(peer_) +
                           " within " + seconds_text(timeout_) + " (it failed or hangs)");
      }
      fabric_.wait(std::chrono::milliseconds(1));
    }
  }

  void drain() {
    const double began = MPI_Wtime();
    while (fabric_.in_flight() > 0) {
      if (fabric_.poll()) throw TransferError("rank " + std::to_string(me_) + ": an unexpected packet arrived");
      if (MPI_Wtime() - began > timeout_.count()) {
        throw TimeoutError("rank " + std::to_string(me_) + ": packets to rank " + std::to_string(peer_) +
                           " were not taken within " + seconds_text(timeout_));
      }
      fabric_.wait(std::chrono::milliseconds(1));
    }
  }

  Fabric& fabric_;
  int me_, peer_;
  std::size_t floats_, header_bytes_;
  Seconds timeout_;
  int salt_ = 0;
  std::uint64_t sequence_ = 0;
  std::size_t wrong_ = 0;
  std::vector<std::byte> header_;  // rank 0: the header it sends next
  Activations rows_;               // rank 0: the rows it sends next
  std::vector<float> staging_;     // device rows: the host side of checks and fills
};

/// What this run measures, one of `transport` and `fabric`, and the raw reference.
struct Methods {
  Transport* transport = nullptr;
  Fabric* fabric = nullptr;
  RawNccl* raw_nccl = nullptr;  // set with --transport nccl: the raw reference is NCCL too
};

/// One measured method: `round_trip()` performs one ping-pong on either rank.
template <typename RoundTrip>
[[nodiscard]] double time_round_trips(const Communicator& comm, int iters, RoundTrip round_trip) {
  barrier(comm);
  const double start = MPI_Wtime();
  for (int i = 0; i < iters; ++i) round_trip();
  const double elapsed = MPI_Wtime() - start;
  return bcast_value(comm, elapsed, 0);  // rank 0's clock decides
}

[[nodiscard]] double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

struct Row {
  std::size_t bytes = 0;
  int iters = 0;
  double raw_us = 0, timed_us = 0;  // timed: the transport or the fabric
  std::size_t wrong = 0;
  [[nodiscard]] double raw_gbs() const { return bytes / (raw_us * 1e-6) / 1e9; }
  [[nodiscard]] double timed_gbs() const { return bytes / (timed_us * 1e-6) / 1e9; }
  [[nodiscard]] double ratio() const { return timed_gbs() / raw_gbs(); }
};

/// Measures one size; every rank returns the same row.
[[nodiscard]] Row measure(const Communicator& comm, const Communicator& raw, const Methods& methods,
                          const Config& config, std::size_t bytes) {
  const std::size_t n = bytes / sizeof(float);
  const int me = comm.rank(), peer = 1 - me;
  const bool device = config.transport == TransportKind::nccl;
  // The fabric brings its own rows; the buffers then serve the raw reference only.
  Buffers b(n, device);
  const int count = static_cast<int>(n);  // sizes stay far below INT_MAX floats here
  auto raw_trip = [&] {
    if (methods.raw_nccl) {
      if (me == 0) {
        methods.raw_nccl->ping(peer, b.device_send(), b.device_recv(), n);
      } else {
        methods.raw_nccl->pong(peer, b.device_recv(), n);
      }
    } else if (me == 0) {
      MPI_Send(b.host_send().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get());
      MPI_Recv(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get(), MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get(), MPI_STATUS_IGNORE);
      MPI_Send(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get());
    }
  };
  auto transport_trip = [&] {
    Transport& transport = *methods.transport;
    if (me == 0) {
      transport.send(peer, b.send_view());
      transport.recv(peer, b.recv_view());
    } else {
      transport.recv(peer, b.recv_view());
      transport.send(peer, b.echo_view());
    }
  };
  std::optional<FabricTrip> fabric;
  if (methods.fabric) fabric.emplace(*methods.fabric, n, config.header_bytes, Seconds(config.timeout));
  auto fabric_trip = [&] { fabric->trip(); };

  Row row{bytes, config.iters, 0, 0, 0};
  if (row.iters == 0) {  // calibrate on the raw path: ~50 ms per repetition
    raw_trip();
    const double one = std::max(time_round_trips(comm, 3, raw_trip) / 3, 1e-7);
    row.iters = static_cast<int>(std::clamp(0.05 / one, 10.0, 2000.0));
  }
  std::vector<double> raw_times, timed_times;
  std::size_t wrong = 0;
  for (int rep = 0; rep < config.reps; ++rep) {
    // Distinct data per method and repetition: a stale buffer cannot pass the check.
    const int raw_salt = 2 * rep + 1, timed_salt = 2 * rep + 2;
    b.fill(raw_salt);
    for (int i = 0; i < config.warmup; ++i) raw_trip();
    raw_times.push_back(time_round_trips(comm, row.iters, raw_trip));
    wrong += b.wrong(raw_salt);
    if (fabric) {
      fabric->start(timed_salt);
      for (int i = 0; i < config.warmup; ++i) fabric_trip();
      timed_times.push_back(time_round_trips(comm, row.iters, fabric_trip));
      wrong += fabric->finish();
    } else {
      b.fill(timed_salt);
      for (int i = 0; i < config.warmup; ++i) transport_trip();
      timed_times.push_back(time_round_trips(comm, row.iters, transport_trip));
      wrong += b.wrong(timed_salt);
    }
  }
  auto pick = [&](const std::vector<double>& t) {
    return config.best ? *std::min_element(t.begin(), t.end()) : median(t);
  };
  row.raw_us = pick(raw_times) / row.iters / 2 * 1e6;
  row.timed_us = pick(timed_times) / row.iters / 2 * 1e6;
  for (std::size_t w : allgather_values(comm, wrong)) row.wrong += w;
  return row;
}

[[nodiscard]] const char* layer_name(const Config& config) {
  return config.layer == Layer::fabric ? "fabric" : "transport";
}

void print_header(const Config& config, std::string_view transport) {
  const std::string raw = config.transport == TransportKind::nccl ? "ncclSend/ncclRecv" : "MPI_Send/MPI_Recv";
  if (config.layer == Layer::fabric) {
    std::printf("# bench_transport: fabric (%zu-byte headers of at most %zu, rows over transport %s) vs raw %s, "
                "2 ranks, one-way ping-pong times\n",
                config.header_bytes, config.max_header_bytes, std::string(transport).c_str(), raw.c_str());
  } else {
    std::printf("# bench_transport: transport %s vs raw %s, 2 ranks, one-way ping-pong times\n",
                std::string(transport).c_str(), raw.c_str());
  }
  std::printf("# sizes %zu..%zu bytes (x%zu), iters %s, warmup %d, reps %d (%s), goal %.2f for sizes >= %zu bytes\n",
              config.min_bytes, config.max_bytes, config.factor,
              config.iters ? std::to_string(config.iters).c_str() : "auto", config.warmup, config.reps,
              config.best ? "min" : "median", config.goal, config.goal_min_bytes);
  std::printf("#\n");
  const bool fabric = config.layer == Layer::fabric;
  std::printf("# %12s %10s %6s %11s %9s %11s %9s %7s %7s\n", "size", "count", "iters", "raw time", "raw",
              fabric ? "fab time" : "xprt time", fabric ? "fab" : "xprt", "ratio", "#wrong");
  std::printf("# %12s %10s %6s %11s %9s %11s %9s %7s %7s\n", "(B)", "(floats)", "", "(us)", "(GB/s)", "(us)", "(GB/s)",
              "(x/raw)", "");
}

void print_row(const Row& r) {
  std::printf("  %12zu %10zu %6d %11.2f %9.3f %11.2f %9.3f %7.3f %7zu\n", r.bytes, r.bytes / sizeof(float), r.iters,
              r.raw_us, r.raw_gbs(), r.timed_us, r.timed_gbs(), r.ratio(), r.wrong);
  std::fflush(stdout);
}

/// Footer; returns whether the run passed.
[[nodiscard]] bool print_footer(const Config& config, const std::vector<Row>& rows) {
  std::size_t wrong = 0;
  std::vector<double> ratios;
  double bandwidth_sum = 0;
  for (const Row& r : rows) {
    wrong += r.wrong;
    bandwidth_sum += r.timed_gbs();
    if (r.bytes >= config.goal_min_bytes) ratios.push_back(r.ratio());
  }
  const bool fabric = config.layer == Layer::fabric;
  std::printf("# Out of bounds values : %zu %s\n", wrong, wrong ? "FAILED" : "OK");
  std::printf("# Avg %s bandwidth : %.3f GB/s\n", layer_name(config),
              rows.empty() ? 0.0 : bandwidth_sum / rows.size());
  bool goal_met = true;
  if (ratios.empty()) {
    std::printf("# %s/raw ratio : no size >= %zu bytes measured\n", fabric ? "Fabric" : "Transport",
                config.goal_min_bytes);
  } else {
    const double med = median(ratios);
    const double worst = *std::min_element(ratios.begin(), ratios.end());
    goal_met = config.goal <= 0 || med >= config.goal;
    std::printf("# %s/raw ratio (sizes >= %zu B): median %.3f, min %.3f; goal >= %.2f (median): %s\n",
                fabric ? "Fabric" : "Transport", config.goal_min_bytes, med, worst, config.goal,
                config.goal <= 0 ? "not checked" : goal_met ? "met" : "NOT met");
  }
  const bool pass = wrong == 0 && goal_met;
  std::printf("# %s\n", pass ? "PASS" : "FAIL");
  return pass;
}

[[nodiscard]] int run(const Communicator& comm, int argc, char** argv) {
  Config config;
  bool help = false;
  std::optional<std::string> error = parse(argc, argv, config, help);
  if (!error && comm.size() != 2) error = "run with exactly 2 ranks (mpiexec -n 2), not " + std::to_string(comm.size());
  if (!error && config.transport == TransportKind::nccl && !nccl_available())
    error = "--transport nccl needs a CUDA build and a GPU per rank";
  if (!agree(comm, error)) return 2;
  if (help) return 0;

  const bool nccl = config.transport == TransportKind::nccl;
  TransportOptions options;
  options.timeout = Seconds(config.timeout);
  const int device = nccl ? WorldLayout(comm.rank(), 2, comm.rank(), 2, 0, 1).device_for(device_count()) : 0;
  std::unique_ptr<Transport> transport = make_transport(config.transport, comm, device, options);
  const std::string transport_name(transport->name());
  std::unique_ptr<Fabric> fabric;
  if (config.layer == Layer::fabric) {
    FabricOptions fabric_options;
    fabric_options.max_header_bytes = config.max_header_bytes;
    fabric_options.timeout = Seconds(config.timeout);
    fabric_options.rows = nccl ? MemoryLocation::device : MemoryLocation::host;
    fabric = make_mpi_fabric(comm, std::move(transport), fabric_options);
  }
  const Communicator raw = comm.duplicate();  // the reference traffic has its own matching space
  std::optional<RawNccl> raw_nccl;
  if (nccl) raw_nccl.emplace(comm, device, Seconds(config.timeout));
  const Methods methods{transport.get(), fabric.get(), raw_nccl ? &*raw_nccl : nullptr};

  if (comm.rank() == 0) print_header(config, transport_name);
  std::vector<Row> rows;
  for (std::size_t bytes = config.min_bytes; bytes <= config.max_bytes; bytes *= config.factor) {
    rows.push_back(measure(comm, raw, methods, config, bytes));
    if (comm.rank() == 0) print_row(rows.back());
  }
  const bool pass = comm.rank() == 0 ? print_footer(config, rows) : true;
  return bcast_value(comm, pass ? 0 : 1, 0);
}

}  // namespace

int main(int argc, char** argv) {
  MpiWorld world(argc, argv);
  try {
    return run(world.comm(), argc, argv);
  } catch (const std::exception& e) {
    abort_job(world.comm(), e.what(), 1);
  }
}
