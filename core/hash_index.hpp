// An index from precomputed 64-bit hashes to objects held elsewhere: open addressing with linear
// probing and backward-shift deletion (no tombstones). The caller computes each key's hash (keyed,
// where peers choose the keys) and says, on a lookup, whether an object is the one it looks for.
//
// The first N slots live inside the index itself, so that the usual handful of entries costs no
// separate allocation to reach (the index sits in a node the simulator already has in cache); a
// burst moves the table to the heap, and it comes back in place when the burst is over.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

namespace p2psip {

template <class T, std::uint32_t N = 8>
class HashIndex {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "the in-place table is a power of two");

 public:
  HashIndex() = default;
  HashIndex(const HashIndex&) = delete;
  HashIndex& operator=(const HashIndex&) = delete;

  /// The object filed under `hash` for which `is_it(const T&)` is true, or nullptr.
  template <class Match>
  [[nodiscard]] T* find(std::uint64_t hash, Match&& is_it) const {
    const Entry* table = slots();
    const std::uint32_t mask = capacity_ - 1;
    for (auto i = static_cast<std::uint32_t>(hash & mask);; i = (i + 1) & mask) {
      const Entry& e = table[i];
      if (e.item == nullptr) return nullptr;
      if (e.hash == hash && is_it(static_cast<const T&>(*e.item))) return e.item;
    }
  }
  /// Files `item` under `hash` (several objects may share a hash).
  void insert(std::uint64_t hash, T* item) {
    if ((size_ + 1) * 4 > capacity_ * 3) resize(capacity_ * 2);
    Entry* table = slots();
    const std::uint32_t mask = capacity_ - 1;
    auto i = static_cast<std::uint32_t>(hash & mask);
    while (table[i].item != nullptr) i = (i + 1) & mask;
    table[i] = Entry{hash, item};
    ++size_;
  }
  /// Removes `item`, filed under `hash`; nothing when it is not there.
  void erase(std::uint64_t hash, const T* item) {
    Entry* table = slots();
    const std::uint32_t mask = capacity_ - 1;
    auto i = static_cast<std::uint32_t>(hash & mask);
    while (table[i].item != item) {
      if (table[i].item == nullptr) return;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion: later entries of the run move up, so no tombstones are needed.
    for (std::uint32_t j = (i + 1) & mask; table[j].item != nullptr; j = (j + 1) & mask) {
      const auto home = static_cast<std::uint32_t>(table[j].hash & mask);
      // Entry j may fill the hole at i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (!stays) {
        table[i] = table[j];
        i = j;
      }
    }
    table[i] = Entry{};
    --size_;
    if (capacity_ > N && size_ * 8 < capacity_) resize(capacity_ / 2);  // after a burst
  }
  [[nodiscard]] std::uint32_t size() const { return size_; }
  [[nodiscard]] bool in_place() const { return !big_; }

 private:
  struct Entry {
    std::uint64_t hash = 0;
    T* item = nullptr;  ///< nullptr: empty
  };
  [[nodiscard]] const Entry* slots() const { return big_ ? big_.get() : local_.data(); }
  Entry* slots() { return big_ ? big_.get() : local_.data(); }
  void resize(std::uint32_t capacity) {
    std::unique_ptr<Entry[]> old_big = std::move(big_);
    const std::array<Entry, N> old_local = local_;
    const Entry* old = old_big ? old_big.get() : old_local.data();
    const std::uint32_t old_capacity = capacity_;
    local_.fill(Entry{});
    if (capacity > N) big_ = std::make_unique<Entry[]>(capacity);
    capacity_ = capacity;
    size_ = 0;
    for (std::uint32_t i = 0; i < old_capacity; ++i) {
      if (old[i].item != nullptr) insert(old[i].hash, old[i].item);
    }
  }

  std::array<Entry, N> local_{};
  std::unique_ptr<Entry[]> big_;  // the table while it has more than N slots
  std::uint32_t capacity_ = N;
  std::uint32_t size_ = 0;
};

}  // namespace p2psip
