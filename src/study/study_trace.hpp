#pragma once
// The dispatch study's HDF5 trace (schema: docs/dispatch-study.md). The conventions of the
// throughput study (src/trace/sim_trace.cpp): run metadata as root attributes, one group per
// policy named by to_string(PolicyKind), `units` attributes, a flush after every policy and
// `complete` = 1 once the run has ended.
#include <string>
#include <vector>

#include "swarm/study/dispatch_study.hpp"
#include "swarm/trace/trace.hpp"

namespace swarm::study {

struct RunMeta {
  std::string program;
  std::string job_file;
  std::string job_text;
  std::string effective;
};

class StudyTrace {
 public:
  /// Writes the metadata, /servers, /workers, /sessions and an empty /summary, then flushes.
  StudyTrace(trace::File& file, const RunMeta& meta, const StudyConfig& config, const SwarmModel& swarm,
             const Sessions& sessions);

  /// One policy's group and its row of /summary; flushes.
  void add_policy(dispatch::PolicyKind kind, const dispatch::RunResult& result, double wall_s);

  /// Marks the end (stopped_early, policies_complete) and `complete` = 1.
  void finish(bool stopped_early);

 private:
  trace::File& file_;
  const Sessions& sessions_;
  trace::Group summary_;
  std::vector<trace::Series> columns_;
  std::int64_t done_ = 0;
};

}  // namespace swarm::study
