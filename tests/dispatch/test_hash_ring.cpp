// Consistent hashing and bounded loads: balance, smoothness (about 1/k of the keys move when
// the k-th bucket arrives, and only to it), and the cap of bounded loads.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "swarm/dispatch/hash_ring.hpp"
#include "swarm/util/random.hpp"
#include "helpers.hpp"

namespace swarm::dispatch {
namespace {

std::vector<std::uint64_t> random_keys(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& k : keys) k = rng();
  return keys;
}

std::vector<WorkerId> owners(const HashRing& ring, const std::vector<std::uint64_t>& keys) {
  std::vector<WorkerId> o(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) o[i] = ring.owner(keys[i]);
  return o;
}

TEST(HashRing, EmptyRingOwnsNothing) {
  const HashRing ring(10);
  EXPECT_EQ(ring.owner(42), kNoWorker);
}

TEST(HashRing, AViewDependsOnTheBucketsNotOnTheOrderTheyArrived) {
  HashRing a(50), b(50);
  for (WorkerId w : {0U, 1U, 2U, 3U}) a.add(w, test::numbered("server-", w));
  for (WorkerId w : {3U, 1U, 0U, 2U}) b.add(w, test::numbered("server-", w));
  const auto keys = random_keys(5000, 1);
  EXPECT_EQ(owners(a, keys), owners(b, keys));
  EXPECT_THROW(a.add(2, "again"), std::invalid_argument);
}

TEST(HashRing, VirtualNodesBalanceTheKeys) {
  HashRing ring(200);
  const std::size_t n = 16;
  for (WorkerId w = 0; w < n; ++w) ring.add(w, test::numbered("w", w));
  const auto keys = random_keys(200000, 2);
  std::vector<double> count(n, 0.0);
  for (WorkerId o : owners(ring, keys)) ++count[o];
  const double mean = static_cast<double>(keys.size()) / n;
  // Each bucket's share has a relative spread of about 1/sqrt(200) = 7%; 30% is > 4 sigma.
  EXPECT_LT(*std::max_element(count.begin(), count.end()) / mean, 1.3);
  EXPECT_GT(*std::min_element(count.begin(), count.end()) / mean, 0.7);
}

TEST(HashRing, TheKthBucketTakesAboutOneKthOfTheKeysAndNothingMovesElsewhere) {
  HashRing ring(100);
  const auto keys = random_keys(100000, 3);
  ring.add(0, "w0");
  std::vector<WorkerId> before = owners(ring, keys);
  double ratio_sum = 0.0;
  const int last = 32;
  for (int k = 2; k <= last; ++k) {
    const auto fresh = static_cast<WorkerId>(k - 1);
    ring.add(fresh, test::numbered("w", fresh));
    const std::vector<WorkerId> after = owners(ring, keys);
    std::size_t moved = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (after[i] == before[i]) continue;
      ++moved;
      ASSERT_EQ(after[i], fresh) << "a key moved between two old buckets when bucket " << k << " joined";
    }
    const double fraction = static_cast<double>(moved) / static_cast<double>(keys.size());
    // The joiner's arc has a relative spread of about 1/sqrt(100) = 10%: +-50% is 5 sigma.
    EXPECT_GT(fraction, 0.5 / k) << "k = " << k;
    EXPECT_LT(fraction, 1.5 / k) << "k = " << k;
    ratio_sum += fraction * k;
    before = after;
  }
  // Averaged over 31 joins the spread is about 2%: the mean of fraction * k is 1 within 10%.
  EXPECT_NEAR(ratio_sum / (last - 1), 1.0, 0.1);
}

TEST(HashRing, ALeavingBucketHandsOnlyItsOwnKeys) {
  HashRing ring(100);
  for (WorkerId w = 0; w < 10; ++w) ring.add(w, test::numbered("w", w));
  const auto keys = random_keys(50000, 4);
  const auto before = owners(ring, keys);
  ring.remove(7);
  const auto after = owners(ring, keys);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (before[i] != 7) {
      EXPECT_EQ(after[i], before[i]);
    } else {
      EXPECT_NE(after[i], 7U);
    }
  }
}

TEST(HashRing, ABucketsArcsAreExactlyTheKeysItOwns) {
  HashRing ring(30);
  for (WorkerId w = 0; w < 7; ++w) ring.add(w, test::numbered("w", w));
  const auto keys = random_keys(20000, 6);
  for (WorkerId w = 0; w < 7; ++w) {
    const auto arcs = ring.arcs(w);
    for (std::uint64_t key : keys) {
      const std::uint64_t x = mix64(key);
      const bool inside = std::any_of(arcs.begin(), arcs.end(), [x](const auto& a) { return a.first <= x && x <= a.second; });
      ASSERT_EQ(inside, ring.owner(key) == w) << "bucket " << w;
    }
  }
}

TEST(BoundedLoads, CapIsCeilOfOnePlusEpsTimesTheMean) {
  EXPECT_EQ(bounded_load_cap(10, 3, 0.5), 5U);   // ceil(5.0)
  EXPECT_EQ(bounded_load_cap(8, 2, 0.25), 5U);   // exactly 5, not 6 by rounding
  EXPECT_EQ(bounded_load_cap(100, 7, 0.1), 16U); // ceil(15.71)
  EXPECT_EQ(bounded_load_cap(0, 4, 0.1), 1U);
  try {
    (void)bounded_load_cap(10, 3, 0.0);
    FAIL() << "eps = 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "dispatch option hash.eps = 0 is invalid: bounded loads need eps > 0");
  }
  EXPECT_THROW((void)bounded_load_cap(10, 3, -0.5), std::invalid_argument);
}

TEST(BoundedLoads, NoBucketEverExceedsTheCap) {
  for (const double eps : {0.01, 0.1, 0.5, 1.0}) {
    for (const std::size_t n : {1UL, 3UL, 10UL, 64UL}) {
      HashRing ring(20);
      for (WorkerId w = 0; w < n; ++w) ring.add(w, test::numbered("b", w));
      std::vector<std::size_t> load(n, 0);
      const auto keys = random_keys(2000, 5 + n);
      for (std::size_t m = 1; m <= keys.size(); ++m) {
        const std::size_t cap = bounded_load_cap(m, n, eps);
        const WorkerId b = ring.first_below(keys[m - 1], cap, [&](WorkerId w) { return load[w]; });
        ASSERT_NE(b, kNoWorker);
        // The walk stops at the plain owner when that one has room.
        if (load[ring.owner(keys[m - 1])] < cap) {
          ASSERT_EQ(b, ring.owner(keys[m - 1]));
        }
        ++load[b];
        ASSERT_LE(*std::max_element(load.begin(), load.end()), cap)
            << "eps = " << eps << ", n = " << n << ", m = " << m;
      }
    }
  }
}

}  // namespace
}  // namespace swarm::dispatch
