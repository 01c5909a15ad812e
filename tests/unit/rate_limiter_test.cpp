// Per-key rate limits (node/core/rate_limiter.hpp) on virtual time.
#include "node/core/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <functional>

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
