// The whole job in one process: every rank a thread running run_rank over the in-process
// fabric (no mpirun), so that epochs of several ranks (batching, reroutes, churn, a prompts file,
// a route of 70 hops) run in GoogleTest. The answers are compared with each prompt generated
// alone (model::generate_local): batching, the split into ranks and replays after reroutes
// must not change a single token.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "swarm/comm/fabric.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/rank.hpp"
#include "swarm/util/clock.hpp"
#include "swarm/model/client.hpp"
#include "swarm/model/weights.hpp"
#include "../../src/job/prompts.hpp"
#include "../../src/job/server.hpp"

namespace swarm::job {
namespace {

namespace fs = std::filesystem;

class Rank : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("swarm_rank_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  struct Run {
    std::vector<int> status;            // per rank
    std::vector<EpochRecord> records;   // rank 0's
  };

  // The job of `args` (command-line style) on `ranks` in-process ranks.
  Run run(int ranks, std::vector<std::string> args) {
    args.push_back("--quiet");
    const auto schema_ = schema();
    const std::string tables[] = {"class"};
    const JobFile file("", schema_, tables, args);
    const JobConfig config = load_config(file, ranks);
    auto fabrics = comm::make_local_fabrics(ranks, {job_header_bytes(config, ranks), comm::Seconds(60), {}});
    Run result;
    result.status.assign(static_cast<std::size_t>(ranks), -1);
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        RankOptions options;
        if (r == 0) options.records = &result.records;
        try {
          result.status[static_cast<std::size_t>(r)] = run_rank(*fabrics[static_cast<std::size_t>(r)], config, file, options);
        } catch (const comm::AbortedError& e) {
          result.status[static_cast<std::size_t>(r)] = 100 + e.code();
        }
      });
    }
    for (auto& t : threads) t.join();
    return result;
  }

  static long sum(const std::vector<EpochRecord>& rs, long EpochRecord::*field) {
    long total = 0;
    for (const auto& r : rs) total += r.*field;
    return total;
  }

  fs::path dir_;
};

// The tiny model of jobs/demo.ini, as command-line keys.
std::vector<std::string> tiny(int layers, std::vector<std::string> more = {}, const std::string& epoch_seconds = "0.2") {
  std::vector<std::string> args = {"--model.layers", std::to_string(layers), "--model.hidden_size", "64",
                                   "--model.intermediate_size", "172", "--model.heads", "4", "--model.kv_heads", "2",
                                   "--model.vocab_size", "256", "--run.epoch_seconds", epoch_seconds};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string prompts_text(int count, int seed) {
  std::string text;
  for (int i = 0; i < count; ++i) {
    text += "{\"id\": \"p" + std::to_string(i) + "\", \"tokens\": [";
    const int len = 1 + (i * 7 + seed) % 13;
    for (int t = 0; t < len; ++t) text.append(t ? "," : "").append(std::to_string((i * 31 + t * 17 + seed) % 256));
    text += "], \"max_new_tokens\": " + std::to_string(1 + (i * 5 + seed) % 9) + "}\n";
  }
  return text;
}

// Each prompt alone, one executor for the whole model: the truth the job's answers must match.
std::vector<std::vector<std::int32_t>> alone(const std::vector<Prompt>& prompts, int layers) {
  model::ModelConfig m;
  m.vocab_size = 256;
  m.hidden_size = 64;
  m.intermediate_size = 172;
  m.num_hidden_layers = layers;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.head_dim = 16;
  m.rms_norm_eps = 1e-5;
  m.max_position_embeddings = 4096;
  const model::RandomWeights weights(m, 1);
  std::vector<std::vector<std::int32_t>> out;
  for (const Prompt& p : prompts) {
    model::GreedyOptions options;
    options.max_new_tokens = p.max_new_tokens;
    options.keep_logits = false;
    const model::Generation g = model::generate_local(weights, model::Backend::cpu, p.tokens, 1, options);
    std::vector<std::int32_t> answer = p.tokens;
    answer.insert(answer.end(), g.tokens[0].begin(), g.tokens[0].end());
    out.push_back(std::move(answer));
  }
  return out;
}

// The answers file: one {"id", "tokens"} a line, in input order.
std::vector<std::vector<std::int32_t>> read_answers(const fs::path& file) {
  std::vector<std::vector<std::int32_t>> out;
  std::ifstream in(file);
  std::string line;
  for (int i = 0; std::getline(in, line); ++i) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("id").get<std::string>(), std::string("p").append(std::to_string(i))) << "input order";
    out.push_back(j.at("tokens").get<std::vector<std::int32_t>>());
  }
  return out;
}

// Four ranks over three epochs: every rank serves, the client batches, the measurements and the
// assignment go round, and the job predicts what it realises.
TEST_F(Rank, EpochsOfFourRanks) {
  const Run r = run(4, tiny(8, {"--run.epochs", "3", "--servers.span", "4", "--workload.concurrency", "16",
                                "--run.strategy", "new_only"}));
  EXPECT_EQ(r.status, std::vector<int>(4, 0));
  ASSERT_EQ(r.records.size(), 3u);
  for (const EpochRecord& e : r.records) {
    EXPECT_GT(e.tokens_per_s, 0);
    EXPECT_GT(e.predicted, 0);
    EXPECT_GT(e.sessions_completed, 0);
    EXPECT_LT(e.batches, static_cast<long>(e.tokens_per_s * e.traffic_seconds)) << "tokens travel in batches";
    ASSERT_EQ(e.ranks.size(), 4u);
    for (const Measurement& m : e.ranks) {
      EXPECT_GT(m.block_tokens_per_s, 0) << "rank " << m.rank;
      EXPECT_EQ(m.span_end - m.span_start, 4);
      EXPECT_EQ(m.span_start, e.assigned_start[static_cast<std::size_t>(m.rank)]) << "every rank loaded what rank 0 sent";
    }
  }
}

// A prompts file on 1 rank and on 4 (span 2: routes of two to four hops), 4 ranks also with a
// leave and a join mid-run: every answer equals the prompt generated alone, token for token.
TEST_F(Rank, PromptsAreAnsweredAsEachAlone) {
  const fs::path in = write("prompts.jsonl", prompts_text(24, 3));
  const std::vector<Prompt> prompts = read_prompts(in, 256, 4096);
  const auto expected = alone(prompts, 8);
  for (const auto& [ranks, extra] : std::vector<std::pair<int, std::vector<std::string>>>{
           {1, {}},
           {4, {"--servers.span", "4"}},
           {4, {"--servers.span", "4", "--churn.leaves", "2 3", "--churn.joins", "3 3", "--run.epochs", "40"}}}) {
    const fs::path out = dir_ / ("answers_" + std::to_string(ranks) + "_" + std::to_string(extra.size()) + ".jsonl");
    // Epochs of 3 ms: the leave and the join fall while prompts are in flight.
    std::vector<std::string> args = tiny(8, {"--workload.prompts", in.string(), "--workload.outputs", out.string(),
                                             "--workload.concurrency", "9"}, extra.size() > 2 ? "0.003" : "0.2");
    args.insert(args.end(), extra.begin(), extra.end());
    const Run r = run(ranks, args);
    ASSERT_EQ(r.status, std::vector<int>(static_cast<std::size_t>(ranks), 0)) << ranks << " ranks";
    const auto answers = read_answers(out);
    ASSERT_EQ(answers.size(), expected.size());
    for (std::size_t i = 0; i < answers.size(); ++i) EXPECT_EQ(answers[i], expected[i]) << "prompt " << i;
    long issued = 0, done = 0;
    for (const EpochRecord& e : r.records) {
      issued += e.sessions_started;
      done += e.sessions_completed;
    }
    EXPECT_EQ(issued, 24);
    EXPECT_EQ(done, 24) << "every prompt exactly once";
    if (extra.size() > 2) {
      long left = 0, joined = 0;
      for (const EpochRecord& e : r.records) {
        left += e.left;
        joined += e.joined;
      }
      EXPECT_EQ(left, 1);
      EXPECT_EQ(joined, 4 + 1);
    }
  }
}

// 70 ranks of one block each on a 70-block model: a route of 70 hops answers like one executor.
TEST_F(Rank, ARouteOfSeventyHops) {
  const fs::path in = write("prompts.jsonl", prompts_text(6, 5));
  const std::vector<Prompt> prompts = read_prompts(in, 256, 4096);
  const fs::path out = dir_ / "answers.jsonl";
  const Run r = run(70, tiny(70, {"--servers.span", "1", "--workload.prompts", in.string(), "--workload.outputs",
                                  out.string(), "--workload.concurrency", "6", "--run.strategy", "new_only"}));
  ASSERT_EQ(r.status, std::vector<int>(70, 0));
  EXPECT_EQ(read_answers(out), alone(prompts, 70));
}

// A bad line of the prompts file: every rank exits 2 before any work, no answers written.
TEST_F(Rank, ABadPromptsFileIsRefusedBeforeAnyWork) {
  const fs::path in = write("bad.jsonl", "{\"id\": \"a\", \"tokens\": [1, 2], \"max_new_tokens\": 2}\n"
                                         "{\"id\": \"b\", \"tokens\": [1, 999], \"max_new_tokens\": 2}\n");
  const fs::path out = dir_ / "answers.jsonl";
  const Run r = run(2, tiny(8, {"--workload.prompts", in.string(), "--workload.outputs", out.string()}));
  EXPECT_EQ(r.status, std::vector<int>(2, 2));
  EXPECT_TRUE(r.records.empty());
  EXPECT_FALSE(fs::exists(out));
}

// The epochs run out before every prompt is answered: exit 4, and no answers file at all.
TEST_F(Rank, UnansweredPromptsWriteNoAnswers) {
  const fs::path in = write("prompts.jsonl", prompts_text(40, 1));
  const fs::path out = dir_ / "answers.jsonl";
  const Run r = run(2, tiny(8, {"--workload.prompts", in.string(), "--workload.outputs", out.string(),
                                "--workload.concurrency", "1", "--run.epochs", "1"}, "0.01"));
  EXPECT_EQ(r.status, std::vector<int>(2, 4));
  EXPECT_FALSE(fs::exists(out));
}

// The only server of blocks 4-7 leaves for good: no prompt can be routed any more. A job that
// runs until its prompts are answered says so and ends (exit 4, no answers) instead of waiting
// for ever.
TEST_F(Rank, ASwarmThatStaysDisjointEndsTheJob) {
  const fs::path in = write("prompts.jsonl", prompts_text(200, 2));
  const fs::path out = dir_ / "answers.jsonl";
  const Run r = run(2, tiny(8, {"--servers.span", "4", "--workload.prompts", in.string(), "--workload.outputs",
                                out.string(), "--workload.concurrency", "1", "--churn.leaves", "2 1",
                                "--run.strategy", "new_only"}, "0.005"));
  EXPECT_EQ(r.status, std::vector<int>(2, 4));
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(r.records.size(), 11u) << "the first epoch, then ten without a route";
  EXPECT_EQ(r.records.back().swarm_throughput, 0.0);
}

// A rank of a slower device class stays busy for its factor times a forward before the batch
// goes on, and measures that much slower: the emulation the balancing is tested with.
TEST(SpanServer, ASlowerClassIsBusyForItsFactor) {
  model::ModelConfig m;
  m.vocab_size = 256;
  m.hidden_size = 64;
  m.intermediate_size = 172;
  m.num_hidden_layers = 4;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.head_dim = 16;
  const model::RandomWeights weights(m, 1);
  DeviceClass slow;
  slow.compute_factor = 4;
  SpanServer span(weights, model::Backend::cpu, slow, 0, {});
  span.load(0, 4);
  Header h;
  h.route = {{0, 0, 4}};
  h.segments = {{1, 1, 64, 0}};
  comm::ActivationPool pool(comm::MemoryLocation::host);
  comm::Activations rows = pool.take(static_cast<std::size_t>(64 * 64));
  std::fill(rows.data(), rows.data() + rows.size(), 0.01f);
  span.start(h, rows);
  const double forward = span.executor().last_forward_seconds();
  ASSERT_FALSE(span.finished()) << "busy for 3 forwards more";
  // The loop handling a packet inside the emulated part is not busier for it: busy time is a
  // union. A served iteration after it counts, its client part apart.
  const double inside = seconds_now();
  span.add_host_seconds(inside, inside + forward);
  while (!span.finished()) std::this_thread::yield();
  const double after = seconds_now() + 10;
  span.add_host_seconds(after, after + 0.25, 0.05);
  const Measurement r = span.report(64, {}, 0);
  EXPECT_NEAR(r.compute_seconds, 3 * forward + 0.2, 1e-9) << "the emulated part and the iteration after it";
  EXPECT_EQ(r.block_tokens, 64.0 * 4);
  EXPECT_LE(r.block_tokens_per_s, r.block_tokens / (3 * forward));
}

}  // namespace
}  // namespace swarm::job
