// Two-rank ping-pong: the activation Transport against raw MPI_Send/MPI_Recv of the same sizes,
// measured in the same run, alternating per repetition so that drift hits both alike.
// Output follows nccl-tests: '#' header with units, fixed columns, a #wrong correctness column,
// a PASS/FAIL footer. Goal (the issue): Transport >= 90% of raw point-to-point bandwidth.
//
//   mpiexec -n 2 bench_transport [--transport mpi|nccl] [--min-bytes 4K] [--max-bytes 64M]
//       [--factor 2] [--iters 0 (auto)] [--warmup 3] [--reps 5] [--stat median|min] [--goal 0.9]
//       [--goal-min-bytes 64K] [--timeout 60]
//
// Times are one-way: half the median (or, with --stat min, the best) round trip over --reps
// repetitions of --iters round trips. Other processes on the cores only ever add time, so
// `min` estimates what the link can do on a shared machine; `median` what a run typically sees. GB/s = bytes / one-way time / 1e9. With --transport nccl the buffers are device
// memory and the raw column stays host MPI (a reference, not a like-for-like comparison).
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/transport.hpp"

namespace {

namespace po = boost::program_options;
using namespace swarm::comm;

struct Config {
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
  std::string transport = "mpi", min_bytes = "4K", max_bytes = "64M", goal_min = "64K", stat = "median";
  po::options_description options("bench_transport options");
  options.add_options()("help,h", "this text")(
      "transport,t", po::value(&transport)->default_value(transport), "mpi (host buffers) or nccl (device buffers)")(
      "min-bytes,b", po::value(&min_bytes)->default_value(min_bytes), "smallest message")(
      "max-bytes,e", po::value(&max_bytes)->default_value(max_bytes), "largest message")(
      "factor,f", po::value(&config.factor)->default_value(config.factor), "size multiplier between rows")(
      "iters,n", po::value(&config.iters)->default_value(config.iters), "round trips per repetition (0: auto, ~50 ms)")(
      "warmup,w", po::value(&config.warmup)->default_value(config.warmup), "untimed round trips per size and method")(
      "reps,r", po::value(&config.reps)->default_value(config.reps), "repetitions")(
      "stat,s", po::value(&stat)->default_value(stat), "median or min over the repetitions")(
      "goal,g", po::value(&config.goal)->default_value(config.goal), "required transport/raw ratio (0: report only)")(
      "goal-min-bytes", po::value(&goal_min)->default_value(goal_min), "smallest size the goal applies to")(
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
  } catch (const std::exception& e) {
    return std::string("bench_transport: ") + e.what();
  }
  return std::nullopt;
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
  double raw_us = 0, transport_us = 0;
  std::size_t wrong = 0;
  [[nodiscard]] double raw_gbs() const { return bytes / (raw_us * 1e-6) / 1e9; }
  [[nodiscard]] double transport_gbs() const { return bytes / (transport_us * 1e-6) / 1e9; }
  [[nodiscard]] double ratio() const { return transport_gbs() / raw_gbs(); }
};

/// Measures one size; every rank returns the same row.
[[nodiscard]] Row measure(const Communicator& comm, const Communicator& raw, Transport& transport, const Config& config,
                          std::size_t bytes) {
  const std::size_t n = bytes / sizeof(float);
  const int me = comm.rank(), peer = 1 - me;
  const bool device = config.transport == TransportKind::nccl;
  Buffers b(n, device);
  const int count = static_cast<int>(n);  // sizes stay far below INT_MAX floats here
  auto raw_trip = [&] {
    if (me == 0) {
      MPI_Send(b.host_send().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get());
      MPI_Recv(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get(), MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get(), MPI_STATUS_IGNORE);
      MPI_Send(b.host_recv().data(), count, MPI_FLOAT, peer, to_mpi(Tag::bench), raw.get());
    }
  };
  auto transport_trip = [&] {
    if (me == 0) {
      transport.send(peer, b.send_view());
      transport.recv(peer, b.recv_view());
    } else {
      transport.recv(peer, b.recv_view());
      transport.send(peer, b.echo_view());
    }
  };

  Row row{bytes, config.iters, 0, 0, 0};
  if (row.iters == 0) {  // calibrate on the raw path: ~50 ms per repetition
    raw_trip();
    const double one = std::max(time_round_trips(comm, 3, raw_trip) / 3, 1e-7);
    row.iters = static_cast<int>(std::clamp(0.05 / one, 10.0, 2000.0));
  }
  std::vector<double> raw_times, transport_times;
  std::size_t wrong = 0;
  for (int rep = 0; rep < config.reps; ++rep) {
    // Distinct data per method and repetition: a stale buffer cannot pass the check.
    const int raw_salt = 2 * rep + 1, transport_salt = 2 * rep + 2;
    b.fill(raw_salt);
    for (int i = 0; i < config.warmup; ++i) raw_trip();
    raw_times.push_back(time_round_trips(comm, row.iters, raw_trip));
    wrong += b.wrong(raw_salt);
    b.fill(transport_salt);
    for (int i = 0; i < config.warmup; ++i) transport_trip();
    transport_times.push_back(time_round_trips(comm, row.iters, transport_trip));
    wrong += b.wrong(transport_salt);
  }
  auto pick = [&](const std::vector<double>& t) {
    return config.best ? *std::min_element(t.begin(), t.end()) : median(t);
  };
  row.raw_us = pick(raw_times) / row.iters / 2 * 1e6;
  row.transport_us = pick(transport_times) / row.iters / 2 * 1e6;
  for (std::size_t w : allgather_values(comm, wrong)) row.wrong += w;
  return row;
}

void print_header(const Config& config, const Transport& transport) {
  std::printf("# bench_transport: transport %s vs raw MPI_Send/MPI_Recv, 2 ranks, one-way ping-pong times\n",
              std::string(transport.name()).c_str());
  std::printf("# sizes %zu..%zu bytes (x%zu), iters %s, warmup %d, reps %d (%s), goal %.2f for sizes >= %zu bytes\n",
              config.min_bytes, config.max_bytes, config.factor,
              config.iters ? std::to_string(config.iters).c_str() : "auto", config.warmup, config.reps,
              config.best ? "min" : "median", config.goal, config.goal_min_bytes);
  std::printf("#\n");
  std::printf("# %12s %10s %6s %11s %9s %11s %9s %7s %7s\n", "size", "count", "iters", "raw time", "raw", "xprt time",
              "xprt", "ratio", "#wrong");
  std::printf("# %12s %10s %6s %11s %9s %11s %9s %7s %7s\n", "(B)", "(floats)", "", "(us)", "(GB/s)", "(us)", "(GB/s)",
              "(x/raw)", "");
}

void print_row(const Row& r) {
  std::printf("  %12zu %10zu %6d %11.2f %9.3f %11.2f %9.3f %7.3f %7zu\n", r.bytes, r.bytes / sizeof(float), r.iters,
              r.raw_us, r.raw_gbs(), r.transport_us, r.transport_gbs(), r.ratio(), r.wrong);
  std::fflush(stdout);
}

/// Footer; returns whether the run passed.
[[nodiscard]] bool print_footer(const Config& config, const std::vector<Row>& rows) {
  std::size_t wrong = 0;
  std::vector<double> ratios;
  double bandwidth_sum = 0;
  for (const Row& r : rows) {
    wrong += r.wrong;
    bandwidth_sum += r.transport_gbs();
    if (r.bytes >= config.goal_min_bytes) ratios.push_back(r.ratio());
  }
  std::printf("# Out of bounds values : %zu %s\n", wrong, wrong ? "FAILED" : "OK");
  std::printf("# Avg transport bandwidth : %.3f GB/s\n", rows.empty() ? 0.0 : bandwidth_sum / rows.size());
  bool goal_met = true;
  if (ratios.empty()) {
    std::printf("# Transport/raw ratio : no size >= %zu bytes measured\n", config.goal_min_bytes);
  } else {
    const double med = median(ratios);
    const double worst = *std::min_element(ratios.begin(), ratios.end());
    goal_met = config.goal <= 0 || med >= config.goal;
    std::printf("# Transport/raw ratio (sizes >= %zu B): median %.3f, min %.3f; goal >= %.2f (median): %s\n",
                config.goal_min_bytes, med, worst, config.goal,
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

  TransportOptions options;
  options.timeout = Seconds(config.timeout);
  const int device = config.transport == TransportKind::nccl ? WorldLayout(comm.rank(), 2, comm.rank(), 2, 0, 1).device_for(device_count()) : 0;
  std::unique_ptr<Transport> transport = make_transport(config.transport, comm, device, options);
  const Communicator raw = comm.duplicate();  // the reference traffic has its own matching space

  if (comm.rank() == 0) print_header(config, *transport);
  std::vector<Row> rows;
  for (std::size_t bytes = config.min_bytes; bytes <= config.max_bytes; bytes *= config.factor) {
    rows.push_back(measure(comm, raw, *transport, config, bytes));
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
