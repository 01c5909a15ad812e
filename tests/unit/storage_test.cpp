// A peer's record store: replacement rules, expiry through its index, ring ranges with wrap-around.
#include "dht/storage.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <random>

namespace p2psip::dht {
namespace {

constexpr std::int64_t kSecond = 1000000;

Instant at_us(std::int64_t us) {
  return Instant(Duration(us));
}

Record rec(NodeId key, std::string dkey, std::int64_t stored_s, std::uint32_t lifetime_s, std::string value = "v") {
  Record r;
  r.key = key;
  r.name = "k";
  r.dkey = std::move(dkey);
  r.value = std::move(value);
  r.stored_at_us = stored_s * kSecond;
  r.lifetime_s = lifetime_s;
  return r;
}

NodeId id(std::uint64_t hi) {
  return NodeId{hi, 0};
}

TEST(Storage, NearestFindsRecordsOfAKindAfterAKeyGoingRoundTheRingOnce) {
  Storage s;
  auto named = [](NodeId key, std::string name, std::uint32_t lifetime_s) {
    Record r = rec(key, "", 0, lifetime_s);
    r.name = std::move(name);
    return r;
  };
  s.put(named(id(10), "turn-service:a:1", 300));
  s.put(named(id(20), "sip:alice@x", 300));
  s.put(named(id(30), "turn-service:b:1", 300));
  s.put(named(id(40), "turn-service:c:1", 10));  // expired by t = 20 s
  s.put(named(id(50), "turn-servicex", 300));    // not of the kind: the prefix holds the ':'
  const auto after15 = s.nearest(id(15), "turn-service:", 4, at_us(20 * kSecond));
  ASSERT_EQ(after15.size(), 2u);
  EXPECT_EQ(after15[0].key, id(30));  // then round past the top of the ring
  EXPECT_EQ(after15[1].key, id(10));
  EXPECT_EQ(s.nearest(id(45), "turn-service:", 1, at_us(20 * kSecond)).at(0).key, id(10));
  EXPECT_EQ(s.nearest(id(35), "turn-service:", 4, at_us(5 * kSecond)).at(0).key, id(40));
  EXPECT_TRUE(s.nearest(id(0), "nothing:", 4, at_us(0)).empty());
}

TEST(Storage, OlderRecordsAreIgnoredAndLifetimeZeroRemoves) {
  Storage s;
  EXPECT_TRUE(s.put(rec(id(5), "a", 100, 60, "new")));
  EXPECT_FALSE(s.put(rec(id(5), "a", 99, 600, "old")));  // a late replica must not roll it back
  ASSERT_NE(s.get(id(5), "a"), nullptr);
  EXPECT_EQ(s.get(id(5), "a")->value, "new");
  EXPECT_EQ(s.next_expiry(), at_us(160 * kSecond));
  EXPECT_TRUE(s.put(rec(id(5), "a", 101, 0)));
  EXPECT_EQ(s.get(id(5), "a"), nullptr);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.next_expiry(), kInstantMax);
}

TEST(Storage, AReplacedRecordExpiresByItsNewLifetimeOnly) {
  Storage s;
  s.put(rec(id(1), "", 0, 10));
  s.put(rec(id(1), "", 5, 100));  // refreshed: now runs to 105 s
  s.put(rec(id(2), "x", 0, 20));
  EXPECT_EQ(s.next_expiry(), at_us(20 * kSecond));
  EXPECT_EQ(s.expire(at_us(10 * kSecond)), 0u);  // the first lifetime no longer counts
  EXPECT_EQ(s.expire(at_us(20 * kSecond)), 1u);
  EXPECT_EQ(s.get(id(2), "x"), nullptr);
  EXPECT_EQ(s.next_expiry(), at_us(105 * kSecond));
  EXPECT_EQ(s.expire(at_us(104 * kSecond)), 0u);
  EXPECT_EQ(s.expire(at_us(105 * kSecond)), 1u);
  EXPECT_EQ(s.size(), 0u);
}

TEST(Storage, ExpiryAgreesWithAScanOverManyRandomRecords) {
  // Random puts, refreshes and removals; after each expiry the store holds exactly the records
  // a scan of every stored version says are alive.
  std::mt19937_64 rng(7);
  Storage s;
  std::map<std::pair<std::uint64_t, std::string>, std::int64_t> expected;  // slot -> expiry
  std::int64_t now = 0;
  for (int step = 0; step < 20000; ++step) {
    std::uint64_t k = rng() % 500;
    std::string dkey(1, static_cast<char>('a' + rng() % 3));
    std::uint32_t life = static_cast<std::uint32_t>(rng() % 50);
    std::int64_t stored = now / kSecond;
    s.put(rec(id(k), dkey, stored, life));
    auto slot = std::pair(k, dkey);
    auto it = expected.find(slot);
    // put ignores only strictly older versions; stored times here never go back
    if (life == 0) {
      if (it != expected.end()) expected.erase(it);
    } else {
      expected[slot] = (stored + life) * kSecond;
    }
    if (step % 100 == 99) {
      now += 3 * kSecond;
      std::size_t want = std::erase_if(expected, [&](const auto& kv) { return kv.second <= now; });
      ASSERT_EQ(s.expire(at_us(now)), want) << "at step " << step;
      ASSERT_EQ(s.size(), expected.size());
      ASSERT_EQ(s.held_for(rec(id(0), "", 0, 1)), expected.size());  // one owner wrote them all
      std::int64_t next = std::numeric_limits<std::int64_t>::max();
      for (const auto& [slot2, exp] : expected) next = std::min(next, exp);
      ASSERT_EQ(s.next_expiry(), at_us(next));
    }
  }
}

TEST(Storage, RangesFollowTheRingAndWrapPastZero) {
  Storage s;
  for (std::uint64_t k : {10, 20, 30, 40}) {
    s.put(rec(id(k), "a", 0, 60));
    s.put(rec(id(k), "b", 0, 60));
  }
  auto keys = [](const std::vector<Record>& rs) {
    std::vector<std::uint64_t> out;
    for (const auto& r : rs) out.push_back(r.key.hi);
    return out;
  };
  EXPECT_EQ(keys(s.range(id(10), id(30))), (std::vector<std::uint64_t>{20, 20, 30, 30}));  // (10, 30]
  EXPECT_EQ(keys(s.range(id(15), id(25))), (std::vector<std::uint64_t>{20, 20}));
  EXPECT_EQ(keys(s.range(id(30), id(10))), (std::vector<std::uint64_t>{10, 10, 40, 40}));  // wraps
  EXPECT_EQ(keys(s.range(id(35), id(5))), (std::vector<std::uint64_t>{40, 40}));
  EXPECT_EQ(s.range(id(40), id(40)).size(), 8u);  // the whole ring
  EXPECT_TRUE(s.range(id(41), id(45)).empty());
}

TEST(Storage, RangesAgreeWithTheRingIntervalTest) {
  std::mt19937_64 rng(11);
  Storage s;
  std::vector<NodeId> ids;
  for (int i = 0; i < 300; ++i) {
    ids.push_back(NodeId{rng(), rng()});
    s.put(rec(ids.back(), "", 0, 60));
  }
  for (int i = 0; i < 200; ++i) {
    NodeId from = ids[rng() % ids.size()], to = i % 2 ? ids[rng() % ids.size()] : NodeId{rng(), rng()};
    std::vector<NodeId> want;
    for (const auto& r : s.all()) {
      if (in_open_closed(r.key, from, to)) want.push_back(r.key);
    }
    std::vector<NodeId> got;
    for (const auto& r : s.range(from, to)) got.push_back(r.key);
    ASSERT_EQ(got, want);
  }
}

}  // namespace
}  // namespace p2psip::dht
