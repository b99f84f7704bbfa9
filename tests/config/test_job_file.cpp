// Job files: typed keys, command-line overrides, tables, and messages naming file, key, value.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "swarm/sim/sim_job.hpp"

namespace swarm::sim {
namespace {

// ctest runs each test in its own process, several at once: the pid keeps their files apart.
std::filesystem::path write(const std::string& name, const std::string& text) {
  const auto path =
      std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_swarm_test_" + name + ".ini");
  std::ofstream(path) << text;
  return path;
}

const char* kGood = R"(
[model]
blocks = 40
[run]
duration = 600
strategies = full, none
[churn]
initial_servers = 5
[class.gpu]
span = 10
block_rps = 1000
)";

std::string error_of(const std::string& text, std::vector<std::string> overrides = {}) {
  const auto path = write("bad", text);
  const std::string tables[] = {"class"};
  try {
    const JobFile job(path, job_schema(), tables, overrides);
    (void)load_config(job);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(JobFile, ReadsTypedKeysTablesAndDefaults) {
  const auto path = write("good", kGood);
  const std::string tables[] = {"class"};
  const JobFile job(path, job_schema(), tables);
  const SimConfig c = load_config(job);
  EXPECT_EQ(c.blocks, 40);
  EXPECT_EQ(c.period, 60);  // default
  ASSERT_EQ(c.strategies.size(), 2U);
  EXPECT_EQ(c.strategies[0], StrategyKind::full);
  ASSERT_EQ(c.classes.size(), 1U);
  EXPECT_EQ(c.classes[0].span, 10);
  EXPECT_NE(job.effective().find("class.gpu.span = 10"), std::string::npos);
  EXPECT_NE(job.text().find("[class.gpu]"), std::string::npos);
}

TEST(JobFile, CommandLineWins) {
  const auto path = write("good2", kGood);
  const std::string tables[] = {"class"};
  const JobFile job(path, job_schema(), tables, {"--model.blocks", "30", "--run.seed=9"});
  const SimConfig c = load_config(job);
  EXPECT_EQ(c.blocks, 30);
  EXPECT_EQ(c.seed, 9U);
}

TEST(JobFile, MessagesNameFileKeyAndValue) {
  const std::string base(kGood);
  // Replaces one "key = value" line of the good file.
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string t = base;
    const auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  const auto expect = [&](const std::string& text, const std::vector<std::string>& parts) {
    const std::string msg = error_of(text);
    ASSERT_FALSE(msg.empty()) << text;
    EXPECT_NE(msg.find("swarm_test_bad.ini"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  };
  expect(base + "[run]\nperiod = -5\n", {"run.period", "-5"});
  expect(base + "[run]\nperiod = 601\n", {"run.period", "601"});
  expect(base + "[run]\nspeed = 3\n", {"run.speed", "unknown"});
  expect(with("span = 10", "span = 41"), {"class.gpu.span", "41"});
  expect(base + "[class.gpu]\nflops = 3\n", {"class.gpu.flops", "unknown"});
  expect(with("block_rps = 1000", "block_rps = fast"), {"class.gpu.block_rps", "fast"});
  expect(base + "[class.gpu]\nspan = 12\n", {"class.gpu.span", "twice", "12"});
  expect(base + "[model]\nhidden_size = big\n", {"big"});
  expect(with("strategies = full, none", "strategies = full, magic"), {"run.strategies", "magic"});
  expect(with("strategies = full, none", "strategies = full, full"), {"run.strategies", "twice"});
  expect(base + "[run]\ncheck = sometimes\n", {"run.check", "sometimes"});
  expect(base + "[churn]\njoins = 10 tpu\n", {"churn.joins", "tpu"});
  expect(base + "[churn]\nleaves = 10 s99999\n", {"churn.leaves", "s99999"});
  expect(base + "[churn]\nflash_crowd = 10 x 5\n", {"churn.flash_crowd", "x"});
  expect(base + "[churn]\nflash_crowd = 10 5\n", {"churn.flash_crowd", "TIME COUNT WINDOW"});
  expect(base + "[churn]\nflash_crowd = 10 0 5\n", {"churn.flash_crowd", "COUNT"});
  expect(base + "[churn]\nflash_crowd = 10 5 -1\n", {"churn.flash_crowd", "WINDOW"});
  expect(with("block_rps = 1000", "block_rps = 1000\nspeed_drift = 9"), {"class.gpu.speed_drift", "9"});
  expect(with("block_rps = 1000", "block_rps = 1000\nleave_at = -1"), {"class.gpu.leave_at", "-1"});
  expect(std::string("[model]\nblocks = 10\n[churn]\ninitial_servers = 3\n"), {"class"});
  expect(std::string("[model]\nblocks = 10\n[class.a]\nspan = 2\n"), {"no servers"});
  EXPECT_NE(error_of(base, {"--run.duration", "-1"}).find("run.duration"), std::string::npos);
  EXPECT_NE(error_of(base, {"--run.nope", "1"}).find("command line"), std::string::npos);
}

TEST(JobFile, EchoedValuesAreCutAndControlCharactersShown) {
  EXPECT_EQ(readable_value("fast"), "fast");
  EXPECT_EQ(readable_value(std::string("a\0b\n", 4)), "a\\x00b\\x0a");
  const std::string huge(2'000'000, 'x');
  const std::string shown = readable_value(huge);
  EXPECT_LT(shown.size(), 120U);
  EXPECT_NE(shown.find("2000000 characters"), std::string::npos) << shown;
  // Through a job file: the message stays short and names the key.
  const std::string msg = error_of(std::string(kGood) + "[run]\ncheck = " + huge + "\n");
  EXPECT_LT(msg.size(), 400U);
  EXPECT_NE(msg.find("run.check"), std::string::npos) << msg.substr(0, 300);
  EXPECT_NE(msg.find("2000000 characters"), std::string::npos) << msg.substr(0, 300);
}

TEST(JobFile, TableKeysCanBeOverriddenOnTheCommandLine) {
  const auto path = write("good3", kGood);
  const std::string tables[] = {"class"};
  const JobFile job(path, job_schema(), tables, {"--class.gpu.span", "7", "--class.gpu.block_rps=500"});
  const SimConfig c = load_config(job);
  ASSERT_EQ(c.classes.size(), 1U);
  EXPECT_EQ(c.classes[0].span, 7);
  EXPECT_NE(job.effective().find("class.gpu.span = 7"), std::string::npos) << job.effective();
  // A bad table value from the command line is blamed on the command line, not on the file.
  const std::string msg = error_of(kGood, {"--class.gpu.span", "99"});
  EXPECT_NE(msg.find("command line: key 'class.gpu.span' = '99'"), std::string::npos) << msg;
  EXPECT_NE(error_of(kGood, {"--class.gpu.span"}).find("needs a value"), std::string::npos);
}

TEST(JobFile, CommandLineValuesAreBlamedOnTheCommandLine) {
  const std::string msg = error_of(kGood, {"--run.duration", "-1"});
  EXPECT_NE(msg.find("command line: key 'run.duration' = '-1'"), std::string::npos) << msg;
  // ... while a bad value in the file still names the file.
  const std::string from_file = error_of(std::string(kGood) + "[run]\nperiod = -5\n", {"--run.duration", "700"});
  EXPECT_NE(from_file.find("swarm_test_bad.ini': key 'run.period'"), std::string::npos) << from_file;
}

TEST(JobFile, StrayArgumentsNegativeSeedsHexAndDirectoriesAreRefused) {
  EXPECT_NE(error_of(kGood, {"run.duration", "600"}).find("unexpected argument 'run.duration'"), std::string::npos);
  const std::string seed = error_of(kGood, {"--run.seed", "-1"});
  EXPECT_NE(seed.find("run.seed"), std::string::npos) << seed;
  EXPECT_NE(seed.find("must be in 0..9223372036854775807"), std::string::npos) << seed;
  const std::string hex = error_of(std::string(kGood) + "[class.other]\nspan = 0x10\n");
  EXPECT_NE(hex.find("class.other.span' = '0x10': not a number"), std::string::npos) << hex;
  const std::string huge = error_of(std::string(kGood) + "[class.other]\nspan = 4\nshare = 1e999\n");
  EXPECT_NE(huge.find("out of the range"), std::string::npos) << huge;
  const std::string tables[] = {"class"};
  try {
    const JobFile job(std::filesystem::temp_directory_path(), job_schema(), tables);
    FAIL() << "a directory was read as a job file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

TEST(JobFile, MissingFileIsNamed) {
  const std::string tables[] = {"class"};
  try {
    const JobFile job("/nonexistent/x.ini", job_schema(), tables);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.ini"), std::string::npos);
  }
}

}  // namespace
}  // namespace swarm::sim
