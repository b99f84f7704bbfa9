// In-process fabrics: the ranks of a job as threads of one process (tests without mpirun, as a
// serial communicator does for a proxy application). Packets are moved between per-rank queues;
// collectives meet at a generation-counted barrier; abort() makes every blocked call throw.
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>

#include "swarm/comm/failure.hpp"
#include "swarm/comm/fabric.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::comm {
namespace {


std::string rank_text(int rank) { return "rank " + std::to_string(rank) + ": "; }

// What the ranks share.
class Hub {
 public:
  Hub(int ranks, FabricOptions options) : options_(options), inboxes_(static_cast<std::size_t>(ranks)),
                                          slots_(static_cast<std::size_t>(ranks)) {}

  void deliver(int to, Packet packet) {
    {
      const std::lock_guard lock(mutex_);
      check_aborted();
      inboxes_[static_cast<std::size_t>(to)].push_back(std::move(packet));
    }
    changed_.notify_all();
  }

  std::optional<Packet> take(int rank) {
    const std::lock_guard lock(mutex_);
    check_aborted();
    auto& inbox = inboxes_[static_cast<std::size_t>(rank)];
    if (inbox.empty()) return std::nullopt;
    Packet p = std::move(inbox.front());
    inbox.pop_front();
    return p;
  }

  // Every rank's bytes, concatenated in rank order; the last to arrive completes the round.
  std::vector<std::byte> gather(int rank, std::span<const std::byte> mine, const char* what) {
    std::unique_lock lock(mutex_);
    check_aborted();
    slots_[static_cast<std::size_t>(rank)].assign(mine.begin(), mine.end());
    const std::uint64_t round = round_;
    if (++arrived_ == static_cast<int>(slots_.size())) {
      result_.clear();
      for (const auto& s : slots_) result_.insert(result_.end(), s.begin(), s.end());
      arrived_ = 0;
      ++round_;
      lock.unlock();
      changed_.notify_all();
      lock.lock();
      return result_;
    }
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(options_.timeout);
    // The next round cannot complete before this rank has joined it, so result_ still holds
    // this round's value when this rank wakes up.
    while (round_ == round) {
      if (aborted_) throw AbortedError(abort_message_, abort_code_);
      if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && round_ == round) {
        throw TimeoutError(rank_text(rank) + what + " did not complete within " +
                           std::to_string(options_.timeout.count()) + " s: a rank failed or has not reached it");
      }
    }
    return result_;
  }

  [[noreturn]] void abort(int rank, std::string_view message, int code) {
    std::string text = std::string(message).starts_with(rank_text(rank)) ? std::string(message)
                                                                         : rank_text(rank) + std::string(message);
    {
      const std::lock_guard lock(mutex_);
      if (!aborted_) {
        aborted_ = true;
        abort_message_ = text;
        abort_code_ = code;
        std::fprintf(stderr, "%s: %s\n", kProgramName.data(), text.c_str());
      }
    }
    changed_.notify_all();
    throw AbortedError(text, code);
  }

  // Waits until something changes (a packet arrives, an abort), at most `max`.
  void wait(int rank, Seconds max) {
    std::unique_lock lock(mutex_);
    check_aborted();
    if (!inboxes_[static_cast<std::size_t>(rank)].empty()) return;
    changed_.wait_for(lock, max);
  }

  [[nodiscard]] const FabricOptions& options() const { return options_; }

 private:
  void check_aborted() const {
    if (aborted_) throw AbortedError(abort_message_, abort_code_);
  }

  FabricOptions options_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::deque<Packet>> inboxes_;
  std::vector<std::vector<std::byte>> slots_;
  std::vector<std::byte> result_;
  int arrived_ = 0;
  std::uint64_t round_ = 0;
  bool aborted_ = false;
  std::string abort_message_;
  int abort_code_ = 0;
};

class LocalFabric final : public Fabric {
 public:
  LocalFabric(std::shared_ptr<Hub> hub, int rank, int size)
      : hub_(std::move(hub)), rank_(rank), size_(size), pool_(MemoryLocation::host) {}

  [[nodiscard]] int rank() const noexcept override { return rank_; }
  [[nodiscard]] int size() const noexcept override { return size_; }
  [[nodiscard]] Seconds timeout() const noexcept override { return hub_->options().timeout; }

  void post(Packet packet) override {
    const int to = packet.peer;
    if (to < 0 || to >= size_) {
      throw UsageError(rank_text(rank_) + "packet to rank " + std::to_string(to) + " outside the " +
                       std::to_string(size_) + "-rank world");
    }
    if (packet.header.size() > hub_->options().max_header_bytes) {
      throw UsageError(rank_text(rank_) + "a header of " + std::to_string(packet.header.size()) +
                       " bytes exceeds the fabric's limit of " + std::to_string(hub_->options().max_header_bytes));
    }
    if (!packet.rows.empty() && packet.rows.location() != MemoryLocation::host) {
      throw UsageError(rank_text(rank_) + "the local fabric moves host rows only");
    }
    packet.peer = rank_;  // the receiver sees the source
    hub_->deliver(to, std::move(packet));
  }

  [[nodiscard]] std::optional<Packet> poll() override {
    std::optional<Packet> p = hub_->take(rank_);
    if (!p) return std::nullopt;
    if (p->peer != rank_) {
      ++stats_.packets_received;
      stats_.bytes_received += p->rows.size() * sizeof(float);
    }
    return p;
  }

  void wait(Seconds max) override {
    const auto began = Clock::now();
    hub_->wait(rank_, max);
    stats_.wait_seconds += std::chrono::duration<double>(Clock::now() - began).count();
  }
  [[nodiscard]] std::size_t in_flight() const noexcept override { return 0; }  // delivered on post
  [[nodiscard]] std::vector<int> in_flight_peers() const override { return {}; }
  [[nodiscard]] ActivationPool& pool() noexcept override { return pool_; }
  [[nodiscard]] FabricStats take_stats() override { return std::exchange(stats_, {}); }

  [[nodiscard]] std::vector<std::byte> allgather(std::span<const std::byte> mine) override {
    return hub_->gather(rank_, mine, "an allgather");
  }

  void broadcast(std::span<std::byte> bytes, int root) override {
    const std::vector<std::byte> all = hub_->gather(rank_, bytes, "a broadcast");
    std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(root) * bytes.size()),
                bytes.size(), bytes.begin());
  }

  [[nodiscard]] bool agree(std::optional<std::string> my_error) override {
    // Each rank's flag and message travel as one fixed-size record: gather the sizes first.
    const std::uint64_t length = my_error ? my_error->size() + 1 : 0;
    const auto lengths = allgather_values(length);
    const std::uint64_t longest = *std::max_element(lengths.begin(), lengths.end());
    if (longest == 0) return true;
    std::vector<std::byte> mine(longest);
    if (my_error) std::memcpy(mine.data(), my_error->data(), my_error->size());
    const std::vector<std::byte> all = allgather(mine);
    if (rank_ == 0) {
      std::vector<std::optional<std::string>> errors;
      for (int r = 0; r < size_; ++r) {
        const auto n = lengths[static_cast<std::size_t>(r)];
        if (n == 0) {
          errors.emplace_back();
        } else {
          errors.emplace_back(std::string(reinterpret_cast<const char*>(all.data()) + r * longest, n - 1));
        }
      }
      for (const std::string& line : failure_lines(errors)) std::fprintf(stderr, "%s\n", line.c_str());
    }
    return false;
  }

  [[noreturn]] void abort(std::string_view message, int code) override { hub_->abort(rank_, message, code); }

 private:
  std::shared_ptr<Hub> hub_;
  int rank_, size_;
  ActivationPool pool_;
  FabricStats stats_;
};

}  // namespace

std::vector<std::unique_ptr<Fabric>> make_local_fabrics(int ranks, FabricOptions options) {
  if (ranks < 1) throw UsageError("make_local_fabrics: need at least one rank");
  auto hub = std::make_shared<Hub>(ranks, options);
  std::vector<std::unique_ptr<Fabric>> fabrics;
  for (int r = 0; r < ranks; ++r) fabrics.push_back(std::make_unique<LocalFabric>(hub, r, ranks));
  return fabrics;
}

}  // namespace swarm::comm
