// Per-key rate limits (core/rate_limiter.hpp) on virtual time.
#include "core/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <random>

namespace p2psip {
namespace {

using Limiter = RateLimiter<int, std::hash<int>>;

TEST(RateLimiter, ABurstThenTheSustainedRate) {
  Limiter lim(RateLimit{10, 5});
  Instant now{};
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(lim.take(1, now)) << i;
  auto wait = lim.take(1, now);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, millis(100));  // one request's worth at 10/s
  EXPECT_TRUE(lim.take(1, now + millis(99)));
  EXPECT_FALSE(lim.take(1, now + millis(100)));
  EXPECT_TRUE(lim.take(1, now + millis(100)));
  // Offered at 100/s for 10 s, 10/s get through (the burst spent already).
  int passed = 0;
  for (int i = 1; i <= 1000; ++i) passed += lim.take(1, now + millis(100) + millis(10) * i) ? 0 : 1;
  EXPECT_EQ(passed, 100);
}

TEST(RateLimiter, KeysAreIndependentAndRefusedRequestsCostNothing) {
  Limiter lim(RateLimit{1, 2});
  Instant now{};
  EXPECT_FALSE(lim.take(1, now));
  EXPECT_FALSE(lim.take(1, now));
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(lim.take(1, now + millis(i)));
  EXPECT_FALSE(lim.take(2, now));               // another key is not touched by key 1's flood
  EXPECT_FALSE(lim.take(1, now + seconds(1)));  // refusals did not push key 1's next turn back
}

TEST(RateLimiter, IdleKeysAreForgotten) {
  Limiter lim(RateLimit{100, 10});
  Instant now{};
  for (int k = 0; k < 10000; ++k) {
    EXPECT_FALSE(lim.take(k, now));
    now += Duration(100);  // 10 000 keys over one second, each sending once
  }
  // At 100/s a key that sent once is owed nothing 10 ms later: only the latest keys are held.
  EXPECT_LT(lim.size(), 300u);
  now += seconds(1);
  for (int k = 0; k < 64; ++k) lim.take(100000 + k, now);
  EXPECT_LE(lim.size(), 64u);
}

TEST(RateLimiter, TheTableNeverPassesItsCap) {
  Limiter lim(RateLimit{1, 1000}, seconds(10), 100);
  Instant now{};
  std::size_t most = 0;
  for (int k = 0; k < 5000; ++k) {
    lim.take(k, now);  // every key busy (1/s, none refilled within the test)
    most = std::max(most, lim.size());
  }
  EXPECT_LE(most, 100u);
  EXPECT_GE(lim.size(), 50u);
}

// The limiter against the plain GCRA that never forgets a key, through quiet spells (a few keys, held
// in place) and floods (many keys at once, in a hash table): forgetting only idle keys, and moving
// between the two forms, changes no answer.
TEST(RateLimiter, AnswersAsAGcraThatForgetsNothing) {
  const RateLimit limit{20, 4};
  Limiter lim(limit);
  std::map<int, Instant> model;  // when each key's bucket is full again
  const Duration interval = millis(50);
  const Duration tolerance = millis(150);  // (burst - 1) / per_s
  std::mt19937_64 rng(11);
  Instant now{};
  std::size_t most = 0;
  int refused = 0;
  for (int step = 0; step < 40000; ++step) {
    const bool flood = (step / 4000) % 2 == 1;
    now += Duration(static_cast<std::int64_t>(rng() % (flood ? 2000 : 20000)));
    const int key = static_cast<int>(rng() % (flood ? 40 : 5));
    Instant& full = model.try_emplace(key, now).first->second;
    full = std::max(full, now);
    std::optional<Duration> expect;
    if (full - now > tolerance) {
      expect = full - now - tolerance;
    } else {
      full += interval;
    }
    const auto got = lim.take(key, now);
    ASSERT_EQ(got, expect) << "step " << step << " key " << key;
    refused += got ? 1 : 0;
    most = std::max(most, lim.size());
  }
  EXPECT_GT(most, 8u) << "no flood spilled past the keys held in place";
  EXPECT_GT(refused, 1000) << "the test never reached the limit";
  // Quiet again: the idle keys go at the next sweeps (a new key starts one).
  now += seconds(5);
  lim.take(100, now);
  now += seconds(2);
  lim.take(101, now);
  EXPECT_LE(lim.size(), 2u);
}

TEST(RateLimiter, OffendersAreLoggedOncePerInterval) {
  Limiter lim(RateLimit{1, 1}, seconds(10));
  Instant now{};
  EXPECT_TRUE(lim.first_in(7, now));
  EXPECT_FALSE(lim.first_in(7, now + seconds(9)));
  EXPECT_TRUE(lim.first_in(8, now + seconds(9)));
  EXPECT_TRUE(lim.first_in(7, now + seconds(10)));
}

TEST(RateLimiter, ZeroRateMeansNoLimit) {
  Limiter lim(RateLimit{0, 1});
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(lim.take(1, Instant{}));
  EXPECT_EQ(lim.size(), 0u);
}

}  // namespace
}  // namespace p2psip
