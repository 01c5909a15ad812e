// SmallVector against std::vector: the same contents through growth past N, shrinking and
// clearing, for a value type and for one that owns memory.
#include "core/small_vector.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

namespace p2psip {
namespace {

TEST(SmallVector, AgreesWithAVectorThroughBurstsAndQuietSpells) {
  SmallVector<std::uint64_t, 4> v;
  std::vector<std::uint64_t> ref;
  std::mt19937_64 rng(11);
  bool spilled = false;
  bool back_in_place = false;
  for (int step = 0; step < 20000; ++step) {
    const bool growing = (step / 300) % 2 == 0;
    const auto roll = rng() % 10;
    if (roll < (growing ? 6u : 3u)) {
      const std::uint64_t x = rng();
      v.push_back(x);
      ref.push_back(x);
    } else if (roll < 9) {
      if (!ref.empty()) {
        v.pop_back();
        ref.pop_back();
      }
    } else if (!ref.empty()) {
      const std::size_t i = rng() % ref.size();
      v[i] = ref[i] = rng();
    }
    ASSERT_EQ(v.size(), ref.size()) << "step " << step;
    ASSERT_TRUE(std::equal(v.begin(), v.end(), ref.begin(), ref.end())) << "step " << step;
    if (!v.in_place()) spilled = true;
    if (spilled && ref.empty() && v.in_place()) back_in_place = true;
    if (step % 5000 == 4999) {
      v.clear();
      ref.clear();
      EXPECT_TRUE(v.in_place());
    }
  }
  EXPECT_TRUE(spilled) << "the test never grew past 4";
  EXPECT_TRUE(back_in_place) << "the test never came back in place";
}

TEST(SmallVector, OwnedValuesSurviveTheMoveAndAreReleasedOnPop) {
  SmallVector<std::unique_ptr<int>, 2> v;
  for (int i = 0; i < 5; ++i) v.push_back(std::make_unique<int>(i));
  EXPECT_FALSE(v.in_place());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(*v[static_cast<std::size_t>(i)], i);
  auto watched = std::make_shared<int>(42);
  std::weak_ptr<int> weak = watched;
  SmallVector<std::shared_ptr<int>, 2> w;
  w.push_back(std::move(watched));
  w.pop_back();
  EXPECT_TRUE(weak.expired()) << "pop_back kept what the element held";
  while (!v.empty()) v.pop_back();
  EXPECT_TRUE(v.in_place());
  v.emplace_back() = std::make_unique<int>(7);
  EXPECT_EQ(*v.front(), 7);
  EXPECT_EQ(v.size(), 1u);
}

}  // namespace
}  // namespace p2psip
