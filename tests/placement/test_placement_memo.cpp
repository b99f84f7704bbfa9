// The exact search's memory of failed states (src/placement/placement_memo.hpp), on its own: the
// search's exactness tests catch an unsound memo only where a wrong prune happens to change an
// answer, and a memo that forgets too much only as slowness.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "../../src/placement/placement_memo.hpp"

namespace swarm::detail {
namespace {

Key random_key(std::mt19937_64& rng) { return {rng() | 1, rng()}; }  // `a` odd, as the search makes them

// A sweep state: its block, then the unused servers per class.
std::vector<int> state(int block, int unused = 3) { return {block, unused, 1}; }

bool dominated(const Dominance& d, const std::vector<int>& s, const std::vector<double>& profile) {
  return d.dominated(state_hash(s), s, profile);
}
void add(Dominance& d, const std::vector<int>& s, const std::vector<double>& profile, std::size_t max_profiles = 1'000'000) {
  d.add(state_hash(s), s, profile, max_profiles);
}

TEST(PlacementMemo, KeySetFindsWhatWasInsertedAndNothingElse) {
  std::mt19937_64 rng(7);
  KeySet set;
  std::vector<Key> in, out;
  for (int i = 0; i < 20'000; ++i) in.push_back(random_key(rng));
  for (int i = 0; i < 20'000; ++i) out.push_back(random_key(rng));
  EXPECT_FALSE(set.contains(in[0]));  // empty: no slots yet
  for (const Key& k : in) set.insert(k, 1'000'000);  // grows many times on the way
  for (const Key& k : in) set.insert(k, 1'000'000);  // repeats change nothing
  for (const Key& k : in) ASSERT_TRUE(set.contains(k));
  for (const Key& k : out) ASSERT_FALSE(set.contains(k));
  // Keys that share their slot (same bits of `a` above the seventh) probe past each other.
  const Key x{(std::uint64_t{5} << 7) | 1, 1}, y{(std::uint64_t{5} << 7) | 3, 2}, z{(std::uint64_t{5} << 7) | 5, 3};
  KeySet small;
  small.insert(x, 100);
  small.insert(y, 100);
  EXPECT_TRUE(small.contains(x));
  EXPECT_TRUE(small.contains(y));
  EXPECT_FALSE(small.contains(z));
}

TEST(PlacementMemo, KeySetStartsAgainEmptyRatherThanGrowPastItsCapacity) {
  std::mt19937_64 rng(8);
  KeySet set;
  std::vector<Key> keys;
  for (int i = 0; i < 10'000; ++i) {
    keys.push_back(random_key(rng));
    set.insert(keys.back(), 1'000);
    ASSERT_TRUE(set.contains(keys.back()));  // the newest is always there
  }
  // Memory stays bounded: most of the old keys are gone (a set of 10,000 would hold them all).
  const auto kept = std::count_if(keys.begin(), keys.end(), [&](const Key& k) { return set.contains(k); });
  EXPECT_LE(kept, 2'048);
  EXPECT_GE(kept, 1);
}

// A profile is ruled out only by a stored one of the same bucket that covers it everywhere.
TEST(PlacementMemo, DominanceRulesOutOnlyWhatAStoredProfileCovers) {
  std::mt19937_64 rng(9);
  constexpr std::size_t kBlocks = 6;
  const auto random_profile = [&] {
    std::vector<double> p(kBlocks);
    for (double& v : p) v = 100.0 * static_cast<double>(rng() % 4);
    return p;
  };
  const auto covers = [](const std::vector<double>& q, const std::vector<double>& p) {
    for (std::size_t x = 0; x < p.size(); ++x) {
      if (p[x] > q[x]) return false;
    }
    return true;
  };
  Dominance dominance;
  std::vector<std::vector<std::vector<double>>> added(4);  // every profile ever added, per bucket
  long ruled_out = 0, checked = 0;
  for (int step = 0; step < 4'000; ++step) {
    const auto bucket = static_cast<std::size_t>(rng() % 4);
    const std::vector<int> s = state(static_cast<int>(bucket));
    const std::vector<double> p = random_profile();
    if (rng() % 3 == 0) {
      add(dominance, s, p);
      added[bucket].push_back(p);
      ASSERT_TRUE(dominated(dominance, s, p)) << "a profile just added rules itself out";
      std::vector<double> lower = p;
      lower[rng() % kBlocks] = 0.0;
      ASSERT_TRUE(dominated(dominance, s, lower)) << "and every profile it covers";
      continue;
    }
    ++checked;
    if (!dominated(dominance, s, p)) continue;
    ++ruled_out;
    const bool sound = std::any_of(added[bucket].begin(), added[bucket].end(),
                                   [&](const std::vector<double>& q) { return covers(q, p); });
    ASSERT_TRUE(sound) << "ruled out by no profile of its bucket, step " << step;
  }
  EXPECT_GT(ruled_out, checked / 10);  // the test exercises both answers
  EXPECT_LT(ruled_out, checked);
}

TEST(PlacementMemo, DominanceKeepsFewProfilesPerStateAndBoundsItsMemory) {
  Dominance dominance;
  // A profile covering a stored one takes its place; what the old one ruled out stays ruled out.
  add(dominance, state(1), {100, 0, 0});
  add(dominance, state(1), {100, 100, 0});
  EXPECT_TRUE(dominated(dominance, state(1), {100, 0, 0}));
  EXPECT_TRUE(dominated(dominance, state(1), {50, 100, 0}));
  EXPECT_FALSE(dominated(dominance, state(1), {0, 0, 100}));
  EXPECT_FALSE(dominated(dominance, state(2), {0, 0, 0})) << "another block";
  EXPECT_FALSE(dominated(dominance, state(1, 2), {0, 0, 0})) << "other unused servers";
  // 64 incomparable profiles a state at most: the 65th gives up the oldest.
  Dominance full;
  const auto profile = [](int i) { return std::vector<double>{static_cast<double>(i), static_cast<double>(1000 - i)}; };
  for (int i = 0; i < 65; ++i) add(full, state(3), profile(i));
  EXPECT_FALSE(dominated(full, state(3), profile(0)));
  for (int i = 1; i < 65; ++i) EXPECT_TRUE(dominated(full, state(3), profile(i))) << i;
  // Past max_profiles in all, the whole store starts again.
  Dominance bounded;
  for (int i = 0; i < 20; ++i) add(bounded, state(i), profile(i), 10);
  EXPECT_FALSE(dominated(bounded, state(0), profile(0)));
  EXPECT_TRUE(dominated(bounded, state(19), profile(19)));
}

// Two states whose hashes collide share a bucket slot, never their profiles: a proof of
// unreachability must not rest on a hash.
TEST(PlacementMemo, StatesWhoseHashesCollideDoNotRuleEachOtherOut) {
  Dominance dominance;
  const std::vector<int> a = state(5, 3), b = state(5, 4);
  const std::uint64_t same = 42;
  dominance.add(same, a, std::vector<double>{300, 300}, 1'000'000);
  EXPECT_TRUE(dominance.dominated(same, a, std::vector<double>{100, 100}));
  EXPECT_FALSE(dominance.dominated(same, b, std::vector<double>{100, 100}));
  dominance.add(same, b, std::vector<double>{200, 200}, 1'000'000);  // b takes the bucket over
  EXPECT_TRUE(dominance.dominated(same, b, std::vector<double>{100, 100}));
  EXPECT_FALSE(dominance.dominated(same, a, std::vector<double>{100, 100}));
}

TEST(PlacementMemo, WorkersSeeEachOthersFailuresAndTakeDistinctRootMultisets) {
  Shared shared(/*split=*/true);
  constexpr int kWorkers = 4, kEach = 2'000;
  std::vector<std::vector<Key>> keys(kWorkers);
  std::vector<std::vector<std::size_t>> taken(kWorkers);
  for (int w = 0; w < kWorkers; ++w) {
    std::mt19937_64 rng(100 + static_cast<unsigned>(w));
    for (int i = 0; i < kEach; ++i) keys[w].push_back(random_key(rng));
  }
  {
    std::vector<std::jthread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&, w] {
        for (int i = 0; i < kEach; ++i) {
          shared.add_failure(keys[w][i]);
          shared.add_dominance(state(w), std::vector<double>{static_cast<double>(i)});
          taken[w].push_back(shared.next_root_option());
        }
      });
    }
  }
  for (int w = 0; w < kWorkers; ++w) {
    for (const Key& k : keys[w]) ASSERT_TRUE(shared.has_failed(k));
    EXPECT_TRUE(shared.dominated(state(w), std::vector<double>{kEach - 1.0}));
  }
  std::set<std::size_t> all;
  for (const auto& t : taken) all.insert(t.begin(), t.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kWorkers * kEach)) << "a root multiset handed out twice";
  EXPECT_EQ(*all.rbegin(), static_cast<std::size_t>(kWorkers * kEach - 1));
  EXPECT_FALSE(shared.stopping());
  shared.prove_unreachable();
  EXPECT_TRUE(shared.stopping());
  EXPECT_TRUE(shared.proven_unreachable());
}

}  // namespace
}  // namespace swarm::detail
