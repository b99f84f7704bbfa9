// The prompts file (workload.prompts) and the answers file (workload.outputs).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "../../src/job/prompts.hpp"
#include "swarm/config/job_file.hpp"

namespace swarm::job {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kVocab = 256;
constexpr int kPositions = 64;

// One directory per test and process: ctest runs the cases in parallel.
class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("swarm_prompts_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  static std::vector<std::string> lines(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }

  /// Whether a temporary (`*.partial.*`) is left under `d`.
  static bool partial_left(const fs::path& d) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) return false;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.path().filename().string().find(".partial.") != std::string::npos) return true;
    }
    return false;
  }

  /// The message of the ConfigError that reading `text` throws ("" when none is thrown).
  std::string refusal(const std::string& text, int vocab = kVocab, int positions = kPositions) const {
    const fs::path p = write("prompts.jsonl", text);
    try {
      (void)read_prompts(p, vocab, positions);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  /// Expects reading `text` to be refused at `line` with a message holding every fragment.
  void expect_refused(const std::string& text, int line, const std::vector<std::string>& fragments) const {
    const std::string msg = refusal(text);
    const std::string prefix = (dir_ / "prompts.jsonl").string() + ":" + std::to_string(line) + ": ";
    ASSERT_FALSE(msg.empty()) << "accepted: " << text.substr(0, 200);
    EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }

  fs::path dir_;
};

using Prompts = Files;
using Answers = Files;

const std::string kGood = R"({"id": "a", "tokens": [1, 2, 3], "max_new_tokens": 4})" "\n";

/// A valid line with its own id.
std::string good(int id) { return R"({"id": "g)" + std::to_string(id) + R"(", "tokens": [1], "max_new_tokens": 4})" "\n"; }

TEST_F(Prompts, ReadsStringAndIntegerIdsBlankLinesAndCrlf) {
  const auto p = write("prompts.jsonl",
                       "\n"
                       R"({"id": "first", "tokens": [0, 1, 255], "max_new_tokens": 5})" "\r\n"
                       "   \t \r\n"
                       R"(  {"tokens": [7], "id": 17, "max_new_tokens": 63, "stop_at_eos": false}  )" "\n"
                       R"({"id": "17", "tokens": [2, 3], "max_new_tokens": 1, "stop_at_eos": true})" "\r\n"
                       R"({"id": -4, "tokens": [9], "max_new_tokens": 2})"
                       "\n\n");
  const auto prompts = read_prompts(p, kVocab, kPositions);
  ASSERT_EQ(prompts.size(), 4u);
  EXPECT_EQ(prompts[0].id, R"("first")");
  EXPECT_EQ(prompts[0].tokens, (std::vector<std::int32_t>{0, 1, 255}));
  EXPECT_EQ(prompts[0].max_new_tokens, 5);
  EXPECT_TRUE(prompts[0].stop_at_eos);  // absent: the default
  EXPECT_EQ(prompts[1].id, "17");
  EXPECT_EQ(prompts[1].tokens, (std::vector<std::int32_t>{7}));
  EXPECT_EQ(prompts[1].max_new_tokens, 63);  // 1 + 63 = max_positions exactly
  EXPECT_FALSE(prompts[1].stop_at_eos);
  EXPECT_EQ(prompts[2].id, R"("17")");  // a string, distinct from the integer 17
  EXPECT_TRUE(prompts[2].stop_at_eos);
  EXPECT_EQ(prompts[3].id, "-4");
}

TEST_F(Prompts, IdKeepsItsStringEscapes) {
  const auto p = write("prompts.jsonl", R"({"id": "say \"hi\"\n", "tokens": [1], "max_new_tokens": 1})" "\n");
  const auto prompts = read_prompts(p, kVocab, kPositions);
  ASSERT_EQ(prompts.size(), 1u);
  EXPECT_EQ(prompts[0].id, R"("say \"hi\"\n")");
  EXPECT_EQ(json::parse(prompts[0].id), "say \"hi\"\n");
}

TEST_F(Prompts, RefusesAMissingFileOrADirectory) {
  const fs::path missing = dir_ / "nope.jsonl";
  try {
    (void)read_prompts(missing, kVocab, kPositions);
    FAIL() << "read a missing file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  try {
    (void)read_prompts(dir_, kVocab, kPositions);
    FAIL() << "read a directory";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
  }
}

TEST_F(Prompts, RefusesAFileWithoutPrompts) {
  for (const std::string text : {"", "\n", "  \n\t\r\n\n"}) {
    const std::string msg = refusal(text);
    EXPECT_NE(msg.find("no prompts"), std::string::npos) << msg;
    EXPECT_NE(msg.find((dir_ / "prompts.jsonl").string()), std::string::npos) << msg;
  }
}

TEST_F(Prompts, RefusesBadJson) {
  expect_refused(kGood + R"({"id": "b", "tokens": [1, 2}, "max_new_tokens": 4})" "\n", 2,
                 {"field 'tokens': not valid JSON", "at column 28"});
  expect_refused(kGood + "{\"id\": \"b\"\n", 2, {"not valid JSON"});
  expect_refused(kGood + kGood.substr(0, kGood.size() - 1) + " trailing\n", 2, {"not valid JSON"});
  expect_refused("[1, 2, 3]\n", 1, {"expected a JSON object", "[1,2,3]"});
  expect_refused("\"just a string\"\n", 1, {"expected a JSON object"});
}

TEST_F(Prompts, RefusesMissingFields) {
  expect_refused(kGood + R"({"id": "b", "tokens": [1]})" "\n", 2, {"field 'max_new_tokens' is missing"});
  expect_refused(R"({"tokens": [1], "max_new_tokens": 2})" "\n", 1, {"field 'id' is missing"});
  expect_refused("\n\n" R"({"id": 3, "max_new_tokens": 2})" "\n", 3, {"field 'tokens' is missing"});
}

TEST_F(Prompts, RefusesUnknownAndRepeatedFields) {
  expect_refused(good(1) + good(2) + good(3) + good(4) + good(5) +
                     R"({"id": "z", "tokens": [1], "max_new_token": 2})" "\n",
                 6, {"unknown field 'max_new_token' (fields: id, tokens, max_new_tokens, stop_at_eos)"});
  expect_refused(R"({"id": "a", "id": "b", "tokens": [1], "max_new_tokens": 2})" "\n", 1,
                 {"field 'id' is given twice"});
}

TEST_F(Prompts, RefusesBadIds) {
  for (const std::string id : {"1.5", "true", "null", "[1]", R"({"x": 1})", "1e3"}) {
    SCOPED_TRACE(id);
    expect_refused(R"({"id": )" + id + R"(, "tokens": [1], "max_new_tokens": 2})" "\n", 1, {"field 'id'", "must be"});
  }
  expect_refused(R"({"id": 1.5, "tokens": [1], "max_new_tokens": 2})" "\n", 1,
                 {"field 'id' = 1.5 must be a string or an integer"});
}

TEST_F(Prompts, RefusesRepeatedIds) {
  expect_refused(kGood + R"({"id": "b", "tokens": [1], "max_new_tokens": 2})" "\n\n\n"
                         R"({"id": "a", "tokens": [1], "max_new_tokens": 2})" "\n",
                 5, {R"(field 'id' = "a" repeats line 1)"});
  expect_refused(R"({"id": 7, "tokens": [1], "max_new_tokens": 2})" "\n"
                 R"({"id": 7, "tokens": [2], "max_new_tokens": 2})" "\n",
                 2, {"field 'id' = 7 repeats line 1"});
}

TEST_F(Prompts, RefusesBadTokens) {
  const auto line = [](const std::string& tokens) {
    return R"({"id": "a", "tokens": )" + tokens + R"(, "max_new_tokens": 2})" "\n";
  };
  expect_refused(good(1) + "\n" + line("[1, 2, 300]"), 3,
                 {"field 'tokens': token 300 is outside the vocabulary [0, 256)", "index 2"});
  expect_refused(line("[256]"), 1, {"field 'tokens': token 256 is outside the vocabulary [0, 256)"});
  expect_refused(line("[-1]"), 1, {"field 'tokens': token -1 is outside"});
  expect_refused(line("[4294967296]"), 1, {"field 'tokens': token 4294967296 is outside"});
  expect_refused(line("[18446744073709551616]"), 1, {"field 'tokens'", "element 0", "not an integer"});
  expect_refused(line("[1, 3.0]"), 1, {"field 'tokens': element 1 = 3.0 is not an integer"});
  expect_refused(line(R"([1, "5"])"), 1, {"field 'tokens': element 1 = \"5\""});
  expect_refused(line("[true]"), 1, {"field 'tokens': element 0 = true"});
  expect_refused(line("[[1]]"), 1, {"field 'tokens': element 0 = [1]"});
  expect_refused(line("[]"), 1, {"field 'tokens' is empty"});
  expect_refused(line(R"("1 2 3")"), 1, {"field 'tokens' = \"1 2 3\" must be an array"});
}

TEST_F(Prompts, RefusesBadMaxNewTokens) {
  const auto line = [](const std::string& n) {
    return R"({"id": "a", "tokens": [1, 2, 3], "max_new_tokens": )" + n + "}\n";
  };
  expect_refused(line("0"), 1, {"field 'max_new_tokens' = 0 must be at least 1"});
  expect_refused(line("-3"), 1, {"field 'max_new_tokens' = -3 must be at least 1"});
  expect_refused(line("2.5"), 1, {"field 'max_new_tokens' = 2.5 must be an integer"});
  expect_refused(line("4.0"), 1, {"field 'max_new_tokens' = 4.0 must be an integer"});
  expect_refused(line(R"("4")"), 1, {"field 'max_new_tokens' = \"4\" must be an integer"});
  expect_refused(line("3000000000"), 1, {"field 'max_new_tokens' = 3000000000 is out of range"});
  expect_refused(line("99999999999999999999999"), 1, {"field 'max_new_tokens'", "must be an integer"});
  // 3 + 62 = 65 positions, one more than the model has.
  expect_refused(line("62"), 1, {"field 'max_new_tokens'", "3 prompt tokens", "62 new tokens", "max_positions 64"});
}

TEST_F(Prompts, RefusesBadStopAtEos) {
  for (const std::string v : {R"("yes")", "1", "null"}) {
    SCOPED_TRACE(v);
    expect_refused(R"({"id": "a", "tokens": [1], "max_new_tokens": 2, "stop_at_eos": )" + v + "}\n", 1,
                   {"field 'stop_at_eos' = " + v, "true or false"});
  }
}

TEST_F(Prompts, RefusesOverflowingNumbersWithoutCrashing) {
  expect_refused(R"({"id": "a", "tokens": [1], "max_new_tokens": 1e999})" "\n", 1,
                 {"field 'max_new_tokens': not valid JSON", "1e999"});
  expect_refused(R"({"id": "a", "tokens": [1, -1e999], "max_new_tokens": 2})" "\n", 1,
                 {"field 'tokens': not valid JSON"});
  expect_refused(R"({"id": 1e999, "tokens": [1], "max_new_tokens": 2})" "\n", 1, {"field 'id': not valid JSON"});
  // Deep nesting: neither the parser nor the message may recurse on it.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_refused(R"({"id": "a", "tokens": [1, )" + deep + R"(], "max_new_tokens": 2})" "\n", 1,
                 {"field 'tokens': element 1 = an array"});
}

TEST_F(Prompts, ReadsALongLineInLinearTime) {
  constexpr int kTokens = 100000;
  std::string tokens;
  for (int i = 0; i < kTokens; ++i) {
    if (i > 0) tokens += ',';
    tokens += std::to_string(i % kVocab);
  }
  const auto p = write("prompts.jsonl", kGood + R"({"id": "long", "tokens": [)" + tokens +
                                            R"(], "max_new_tokens": 16})" "\n");
  const auto start = std::chrono::steady_clock::now();
  const auto prompts = read_prompts(p, kVocab, kTokens + 16);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(prompts.size(), 2u);
  ASSERT_EQ(prompts[1].tokens.size(), static_cast<std::size_t>(kTokens));
  for (int i = 0; i < kTokens; ++i) ASSERT_EQ(prompts[1].tokens[i], i % kVocab);
  EXPECT_LT(seconds, 5.0);  // about 10 ms; quadratic reading would take minutes

  expect_refused(kGood + R"({"id": "long", "tokens": [)" + tokens + R"(], "max_new_tokens": 16})" "\n", 2,
                 {"100000 prompt tokens", "16 new tokens", "max_positions 64"});
}

TEST_F(Answers, RoundTripEchoesIdsAsGiven) {
  const auto in = write("prompts.jsonl",
                        R"({"id": "abc", "tokens": [1, 2], "max_new_tokens": 3})" "\n"
                        R"({"id": 17, "tokens": [5], "max_new_tokens": 1})" "\n"
                        R"({"id": "q\"uote", "tokens": [9, 8, 7], "max_new_tokens": 2})" "\n"
                        R"({"id": 18446744073709551615, "tokens": [0], "max_new_tokens": 1})" "\n"
                        R"({"id": -3, "tokens": [4], "max_new_tokens": 1})" "\n");
  const auto prompts = read_prompts(in, kVocab, kPositions);
  std::vector<std::vector<std::int32_t>> answers;
  for (const auto& p : prompts) {
    auto a = p.tokens;
    for (int k = 0; k < p.max_new_tokens; ++k) a.push_back(100 + k);
    answers.push_back(a);
  }
  const fs::path out = dir_ / "answers.jsonl";
  write_answers(out, prompts, answers);

  const auto got = lines(out);
  ASSERT_EQ(got.size(), prompts.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const json line = json::parse(got[i]);
    EXPECT_EQ(line, (json{{"id", json::parse(prompts[i].id)}, {"tokens", answers[i]}})) << got[i];
    EXPECT_EQ(got[i].rfind("{\"id\":" + prompts[i].id + ",", 0), 0u) << got[i];
  }
  EXPECT_EQ(got[0], R"({"id":"abc","tokens":[1,2,100,101,102]})");
  EXPECT_EQ(got[1], R"({"id":17,"tokens":[5,100]})");
  EXPECT_EQ(got[3], R"({"id":18446744073709551615,"tokens":[0,100]})");
  EXPECT_EQ(slurp(out).back(), '\n');
  EXPECT_FALSE(partial_left(dir_));
}

TEST_F(Answers, ALongAnswerRoundTrips) {
  Prompt p;
  p.id = "\"long\"";
  std::vector<std::int32_t> answer(100000);
  for (std::size_t i = 0; i < answer.size(); ++i) answer[i] = static_cast<std::int32_t>(i % 50000);
  const fs::path out = dir_ / "answers.jsonl";
  write_answers(out, {p}, {answer});
  const auto got = lines(out);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(json::parse(got[0])["tokens"].get<std::vector<std::int32_t>>(), answer);
}

TEST_F(Answers, ReplacesAnExistingFile) {
  const fs::path out = write("answers.jsonl", std::string(10000, 'x') + "\nold\n");
  Prompt p;
  p.id = "1";
  write_answers(out, {p}, {{1, 2, 3}});
  EXPECT_EQ(slurp(out), "{\"id\":1,\"tokens\":[1,2,3]}\n");
  EXPECT_FALSE(partial_left(dir_));
}

TEST_F(Answers, WritesBesideARelativePath) {
  // No directory part: the temporary goes in the working directory.
  const fs::path out = "swarm_answers_" + std::to_string(::getpid()) + ".jsonl";
  Prompt p;
  p.id = "\"r\"";
  write_answers(out, {p}, {{4}});
  EXPECT_EQ(slurp(out), "{\"id\":\"r\",\"tokens\":[4]}\n");
  fs::remove(out);
  EXPECT_FALSE(partial_left(fs::current_path()));
}

TEST_F(Answers, RefusesMismatchedOrEmptyAnswers) {
  Prompt p;
  p.id = "\"a\"";
  const fs::path out = dir_ / "answers.jsonl";
  EXPECT_THROW(write_answers(out, {p, p}, {{1}}), std::invalid_argument);
  EXPECT_THROW(write_answers(out, {p}, {{}}), std::invalid_argument);
  Prompt no_id;
  EXPECT_THROW(write_answers(out, {no_id}, {{1}}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(partial_left(dir_));
}

/// The message of the runtime_error that write_answers throws for `out` ("" when none).
std::string write_failure(const fs::path& out) {
  Prompt p;
  p.id = "\"a\"";
  try {
    write_answers(out, {p}, {{1, 2}});
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST_F(Answers, FailsWhenTheDirectoryIsMissing) {
  const fs::path out = dir_ / "missing" / "answers.jsonl";
  const std::string msg = write_failure(out);
  EXPECT_NE(msg.find(out.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir_ / "missing"));
  EXPECT_FALSE(partial_left(dir_));
}

TEST_F(Answers, FailsWhenTheParentIsARegularFile) {
  // Refused even for root, unlike a read-only directory.
  write("plain", "not a directory\n");
  const fs::path out = dir_ / "plain" / "answers.jsonl";
  const std::string msg = write_failure(out);
  EXPECT_NE(msg.find(out.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
  EXPECT_EQ(slurp(dir_ / "plain"), "not a directory\n");
  EXPECT_FALSE(partial_left(dir_));
}

TEST_F(Answers, FailsWhenTheTargetIsADirectory) {
  fs::create_directory(dir_ / "answers.jsonl");
  const std::string msg = write_failure(dir_ / "answers.jsonl");
  EXPECT_NE(msg.find((dir_ / "answers.jsonl").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_directory(dir_ / "answers.jsonl"));
  EXPECT_FALSE(partial_left(dir_));
}

TEST_F(Answers, AFailedWriteKeepsTheOldFileAndLeavesNoTemporary) {
  // A file size limit makes writes fail with EFBIG as a full disk would with ENOSPC, root or not.
  const fs::path out = write("answers.jsonl", "old\n");
  std::vector<Prompt> prompts(200);
  std::vector<std::vector<std::int32_t>> answers(200, std::vector<std::int32_t>(100, 123456));
  for (std::size_t i = 0; i < prompts.size(); ++i) prompts[i].id = std::to_string(i);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  std::string msg;
  try {
    write_answers(out, prompts, answers);
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  ::signal(SIGXFSZ, old_handler);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &saved), 0);

  ASSERT_FALSE(msg.empty()) << "a write past the size limit succeeded";
  EXPECT_NE(msg.find(out.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::generic_category().message(EFBIG)), std::string::npos) << msg;
  EXPECT_EQ(slurp(out), "old\n");
  EXPECT_FALSE(partial_left(dir_));
}

}  // namespace
}  // namespace swarm::job
