#pragma once
// Rank 0's part beside its server: the client (sessions, continuous batching, greedy tokens),
// the balancer (churn and the strategy at every boundary), the trace and the final report.
// It drives rank 0's epoch of traffic and decides at every boundary; it sees the other ranks
// only through the fabric.
#include <atomic>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "client.hpp"
#include "job_trace.hpp"
#include "prompts.hpp"
#include "server.hpp"
#include "swarm/comm/fabric.hpp"
#include "swarm/job/balancer.hpp"
#include "swarm/job/config.hpp"
#include "swarm/model/client.hpp"
#include "swarm/trace/trace.hpp"

namespace swarm::job {

/// What rank 0 broadcasts at a boundary.
struct Decision {
  Command command = Command::run;
  std::vector<Assignment> assignment;  // one per rank
};

class Coordinator {
 public:
  /// Opens the trace (and generation mode's output) before any work, so that an unusable path
  /// fails at start-up. `prompts`: the prompts workload, or generation mode's one prompt.
  Coordinator(const JobConfig& config, const JobFile& file, const model::WeightSource& source, int ranks,
              std::vector<int> span_lengths, std::vector<Prompt> prompts, const JobMetadata& meta);

  /// The first assignment, from the start-up measurements (ranks join one by one).
  [[nodiscard]] Decision initial(const std::vector<Measurement>& measured);
  /// Rank 0's epoch of traffic, until every batch it started has come back; then it tells every
  /// rank that the epoch is over. Returns the seconds of traffic.
  double traffic(HopRunner& runner, SpanServer& span, comm::Fabric& fabric,
                 const std::atomic<bool>* terminate);
  /// Between the blocks of this rank's host forwards: takes in what arrived (the client answers
  /// results at once, batches queue for the runner), so that a long forward on rank 0 does not
  /// keep the other ranks waiting for their next batch.
  void between_blocks(HopRunner& runner, SpanServer& span, comm::Fabric& fabric);
  /// The boundary after epoch `epoch`: records it, then churn and the strategy (or the end).
  [[nodiscard]] Decision boundary(int epoch, const std::vector<Measurement>& measured, double traffic_seconds,
                                  const BoundaryTimes& previous, bool last_epoch);
  /// Seconds the last boundary() spent deciding (churn and the strategy).
  [[nodiscard]] double decide_seconds() const { return decide_seconds_; }
  /// Seconds the last boundary() spent writing the epoch's record (trace and progress line).
  [[nodiscard]] double record_seconds() const { return record_seconds_; }
  /// After every rank applied `d`: the client's new servers, reroutes, probes of idle ranks.
  void after(const Decision& d, const std::vector<Measurement>& measured);
  /// The report, the trace's last attribute, the answers / generation output. Returns the exit
  /// status (0, 3 stopped early, 4 epochs ran out with prompts unanswered).
  int finish(int epochs_run);

  [[nodiscard]] const std::vector<EpochRecord>& records() const { return records_; }
  /// The client's LM head on rank 0's GPU (model.backend cuda), or on the host.
  void run_head_on(model::Backend backend, const model::ExecutorOptions& options) {
    model_.run_head_on(backend, options);
  }
  /// Seconds rank 0 spent as the client in the last epoch of traffic.
  [[nodiscard]] double client_seconds() const { return client_seconds_; }

 private:
  void handle(comm::Packet packet, HopRunner& runner, SpanServer& span, comm::Fabric& fabric);
  void post(std::vector<Outgoing> out, SpanServer& span, comm::Fabric& fabric);
  void send(comm::Packet packet, comm::Fabric& fabric);
  void await_epoch_done(comm::Fabric& fabric);
  [[nodiscard]] std::vector<int> silent_ranks(const std::vector<Hop>& hops, double now, double longer_than) const;
  void record(int epoch, const std::vector<Measurement>& measured, double traffic_s, const BoundaryTimes& boundary);
  void progress(int epoch, const EpochRecord& r) const;
  void summary() const;
  void dump_output();

  const JobConfig& config_;
  const JobFile& file_;
  int ranks_;
  std::vector<Prompt> prompts_;
  model::ClientModel model_;
  Client client_;
  Balancer balancer_;
  std::optional<trace::File> trace_file_;
  std::optional<trace::File> dump_file_;  // generation output (--dump-output)
  std::unique_ptr<JobTrace> trace_;
  BoundaryDecision last_decision_;
  std::vector<Outgoing> pending_;  // drops and probes for the start of the next epoch
  std::vector<EpochRecord> records_;
  std::vector<double> last_post_;   // per rank: when rank 0 last sent it something (heartbeats)
  std::vector<double> last_heard_;  // per rank: when it last sent rank 0 something in this epoch
  std::vector<std::vector<float>> staged_;  // host rows of uploads that may still be copying
  static constexpr int kDisjointEpochs = 10;
  int disjoint_epochs_ = 0;    // consecutive epochs with a block no online server holds
  int probes_in_flight_ = 0;
  std::uint64_t next_probe_ = 1;
  double client_seconds_ = 0;  // this epoch
  double decide_seconds_ = 0, record_seconds_ = 0;
  bool stop_ = false;          // a rank asked to stop (SIGTERM/SIGINT)
  bool finished_ = false;      // the workload is done
  double began_;
};

}  // namespace swarm::job
