// SmallMap against std::unordered_map: the same operations, the same answers, in place and spilled.
#include "core/small_map.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <unordered_map>

namespace p2psip {
namespace {

TEST(SmallMap, AgreesWithAnUnorderedMapThroughBurstsAndQuietSpells) {
  SmallMap<std::uint64_t, int, 4> m;
  std::unordered_map<std::uint64_t, int> ref;
  std::mt19937_64 rng(7);
  std::size_t most = 0;
  bool emptied_after_spill = false;
  for (int step = 0; step < 20000; ++step) {
    // Phases of growth and shrinkage, so that the map spills past 4 and comes back in place.
    const bool growing = (step / 500) % 2 == 0;
    const std::uint64_t key = rng() % 12;
    const auto roll = rng() % 10;
    if (roll < (growing ? 6u : 2u)) {
      const int v = static_cast<int>(rng() % 1000);
      m[key] = v;
      ref[key] = v;
    } else if (roll < 9) {
      EXPECT_EQ(m.erase(key), ref.erase(key) == 1) << "step " << step;
    } else {
      const int* got = m.find(key);
      auto it = ref.find(key);
      ASSERT_EQ(got != nullptr, it != ref.end()) << "step " << step;
      if (got != nullptr) {
        EXPECT_EQ(*got, it->second);
      }
    }
    ASSERT_EQ(m.size(), ref.size()) << "step " << step;
    if (most > 4 && ref.empty()) emptied_after_spill = true;
    most = std::max(most, ref.size());
  }
  EXPECT_GT(most, 4u) << "the test never spilled";
  EXPECT_TRUE(emptied_after_spill) << "the test never came back in place";
  for (std::uint64_t k = 0; k < 12; ++k) {
    EXPECT_EQ(m.contains(k), ref.count(k) == 1);
    if (m.contains(k)) {
      EXPECT_EQ(*m.find(k), ref[k]);
    }
  }
}

TEST(SmallMap, ErasingDestroysTheValueAtOnce) {
  SmallMap<int, std::shared_ptr<int>, 2> m;
  auto watched = std::make_shared<int>(5);
  std::weak_ptr<int> weak = watched;
  m[1] = std::move(watched);
  m[2] = std::make_shared<int>(6);
  EXPECT_TRUE(m.erase(1));
  EXPECT_TRUE(weak.expired());
  EXPECT_FALSE(m.erase(1));
  ASSERT_NE(m.find(2), nullptr);
  EXPECT_EQ(**m.find(2), 6);
  // Spilled: the same.
  auto more = std::make_shared<int>(9);
  weak = more;
  m[3] = std::move(more);
  m[4] = std::make_shared<int>(10);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_TRUE(m.erase(3));
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(**m.find(4), 10);
  EXPECT_EQ(**m.find(2), 6);
}

TEST(SmallMap, AMissingKeyIsValueInitialized) {
  SmallMap<int, int, 1> m;
  EXPECT_EQ(m[3], 0);
  m[3] = 4;
  EXPECT_EQ(m[5], 0);  // spills
  EXPECT_EQ(m[3], 4);
  EXPECT_EQ(m.size(), 2u);
}

}  // namespace
}  // namespace p2psip
