#pragma once
// Rank 0's driver of a request-dispatch policy (the classical load-balancing methods,
// src/dispatch) in the MPI job: the workers are the routes the swarm's capacity splits into
// (capacity_routes), the tasks are sessions. It turns the job's real events (a session admitted
// or finished, routes appearing or breaking at an epoch boundary, time passing) into policy calls
// and the policy's decisions into session starts and preemptions. Pure: no MPI, no clock of its
// own (the caller passes `now`).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "swarm/dispatch/policy.hpp"
#include "swarm/job/routing.hpp"

namespace swarm::job {

class Dispatcher {
 public:
  Dispatcher(dispatch::PolicyKind kind, const dispatch::DispatchOptions& options, std::uint64_t seed);

  /// The routes of the coming epoch. Routes that are gone leave (their sessions are handed back to
  /// the policy), new ones join; a route with the same chain keeps its worker.
  void set_routes(const std::vector<RouteShare>& routes, double now);
  /// A session enters with `work` tokens to process.
  void arrive(std::uint64_t session, double work, double now);
  /// The session finished on its route after `elapsed` seconds of `tokens` tokens.
  void finished(std::uint64_t session, double elapsed, double tokens, double now);
  /// Fires the timers that are due.
  void tick(double now);

  struct Start {
    std::uint64_t session;
    std::vector<Hop> route;
  };
  /// Sessions to start now on a route, and sessions the policy took away from their route (their
  /// KV caches are lost; a Start will follow when the policy runs them again).
  [[nodiscard]] std::vector<Start> take_starts();
  [[nodiscard]] std::vector<std::uint64_t> take_preempts();

  [[nodiscard]] dispatch::PolicyKind kind() const { return policy_->kind(); }
  [[nodiscard]] std::size_t routes() const { return live_.size(); }

  /// Counters since the last call (the epoch's): control messages the policy spent, sessions that
  /// changed route (migrations), and max / mean of the tokens the live routes served.
  struct Stats {
    std::uint64_t messages = 0;
    long migrations = 0;
    double imbalance = 0;
    int routes = 0;
  };
  [[nodiscard]] Stats take_stats();

 private:
  void execute(dispatch::Actions& actions, double now);
  void idle(dispatch::WorkerId w, double now);
  void take_back(std::uint64_t session);

  std::unique_ptr<dispatch::Policy> policy_;
  struct Worker {
    RouteShare route;
    std::optional<dispatch::TaskId> running;
    double served = 0;  // tokens this epoch
  };
  std::vector<Worker> workers_;                    // by WorkerId, never reused
  std::map<std::string, dispatch::WorkerId> live_; // route key -> worker
  std::vector<std::uint64_t> sessions_;            // TaskId -> session
  std::map<std::uint64_t, dispatch::TaskId> tasks_;
  std::map<dispatch::TaskId, dispatch::WorkerId> bound_;  // last worker a task was assigned or run on
  std::vector<dispatch::Timer> timers_;
  std::vector<Start> starts_;
  std::vector<std::uint64_t> preempts_;
  Stats stats_;
  dispatch::Actions scratch_;
};

}  // namespace swarm::job
