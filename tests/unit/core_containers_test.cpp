// The foundation's generic containers (core/hash_index.hpp, slot_pool.hpp, indexed_heap.hpp) against
// the standard library's, through bursts that move them out of place and back.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/hash_index.hpp"
#include "core/indexed_heap.hpp"
#include "core/slot_pool.hpp"

namespace p2psip {
namespace {

struct Named {
  std::string name;
  std::uint32_t heap_pos = kNotInHeap;
};

TEST(HashIndex, FindsWhatWasFiledThroughCollisionsGrowthAndShrinking) {
  HashIndex<Named, 8> index;
  std::vector<std::unique_ptr<Named>> items;
  std::mt19937_64 rng(7);
  // Hashes drawn from a small range: many collide, and runs wrap around the table.
  auto hash_of = [](const std::string& s) { return std::hash<std::string>{}(s) % 13; };
  for (int i = 0; i < 200; ++i) {
    items.push_back(std::make_unique<Named>(Named{"n" + std::to_string(i)}));
    index.insert(hash_of(items.back()->name), items.back().get());
  }
  EXPECT_FALSE(index.in_place());
  EXPECT_EQ(index.size(), 200u);
  for (const auto& it : items) {
    const std::string& want = it->name;
    EXPECT_EQ(index.find(hash_of(want), [&](const Named& n) { return n.name == want; }), it.get());
  }
  EXPECT_EQ(index.find(hash_of("absent"), [](const Named& n) { return n.name == "absent"; }), nullptr);
  // Erase in a random order, checking the rest after each.
  std::shuffle(items.begin(), items.end(), rng);
  while (items.size() > 1) {
    index.erase(hash_of(items.back()->name), items.back().get());
    items.pop_back();
    for (const auto& it : items) {
      const std::string& want = it->name;
      ASSERT_EQ(index.find(hash_of(want), [&](const Named& n) { return n.name == want; }), it.get());
    }
  }
  EXPECT_TRUE(index.in_place());  // the burst is over: back in the index itself
  Named stranger{"x"};
  index.erase(hash_of("x"), &stranger);  // not filed: nothing happens
  EXPECT_EQ(index.size(), 1u);
}

TEST(SlotPool, IdsNameNothingOnceReleasedEvenAfterTheSlotIsReusedOrThePoolShrinks) {
  SlotPool<std::string, 4> pool;
  std::vector<PoolId> released;
  std::vector<PoolId> live;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      auto [id, item] = pool.create();
      ASSERT_NE(id, 0u);
      *item = std::to_string(id);
      live.push_back(id);
    }
    EXPECT_FALSE(pool.in_place());
    for (PoolId id : live) {
      ASSERT_NE(pool.find(id), nullptr);
      EXPECT_EQ(*pool.find(id), std::to_string(id));
    }
    for (PoolId id : live) pool.release(id);
    released.insert(released.end(), live.begin(), live.end());
    live.clear();
    EXPECT_EQ(pool.size(), 0u);
    EXPECT_TRUE(pool.in_place());
  }
  // Every id ever given was distinct, and none names anything now.
  EXPECT_EQ(std::set<PoolId>(released.begin(), released.end()).size(), released.size());
  auto [fresh, item] = pool.create();
  (void)item;
  for (PoolId id : released) EXPECT_EQ(pool.find(id), nullptr);
  EXPECT_NE(pool.find(fresh), nullptr);
  EXPECT_EQ(pool.find(0), nullptr);
}

TEST(IndexedHeap, GivesTheEarliestAndFollowsChangesAndRemovals) {
  IndexedHeap<Named, 4> heap;
  std::vector<Named> items(50);
  std::map<std::uint64_t, Instant> due;  // the model: item index -> when
  std::mt19937_64 rng(11);
  for (std::size_t round = 0; round < 2000; ++round) {
    const std::size_t i = rng() % items.size();
    const bool remove = rng() % 4 == 0;
    const Instant at = remove ? kInstantMax : Instant(Duration(static_cast<std::int64_t>(rng() % 1000)));
    heap.update(items[i], at, i);
    if (remove) {
      due.erase(i);
    } else {
      due[i] = at;
    }
    ASSERT_EQ(heap.size(), due.size());
    if (due.empty()) {
      EXPECT_EQ(heap.next(), kInstantMax);
      continue;
    }
    // The earliest, ties to the smaller index.
    auto best = due.begin();
    for (auto it = due.begin(); it != due.end(); ++it) {
      if (it->second < best->second) best = it;
    }
    ASSERT_EQ(heap.next(), best->second);
    ASSERT_EQ(&heap.top(), &items[best->first]);
  }
}

}  // namespace
}  // namespace p2psip
