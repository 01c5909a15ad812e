// A binary min-heap of objects held elsewhere, each of which knows its own place in the heap (a
// `std::uint32_t heap_pos` member): an object's key changes, or it leaves, in O(log n) with nothing
// left behind. Ties of the key go to the smaller tie-breaker, so that the order is deterministic.
// The first N entries live inside the heap (a SmallVector).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "core/small_vector.hpp"
#include "core/time.hpp"

namespace p2psip {

/// The `heap_pos` of an object in no IndexedHeap.
inline constexpr std::uint32_t kNotInHeap = UINT32_MAX;

template <class T, std::size_t N = 4>
class IndexedHeap {
 public:
  static constexpr std::uint32_t kNotQueued = kNotInHeap;

  /// Files `item` at `at` (kInstantMax: takes it out), `tie` breaking ties; `item.heap_pos` must
  /// be kNotInHeap for an object not in the heap.
  void update(T& item, Instant at, std::uint64_t tie) {
    if (item.heap_pos != kNotQueued) {
      const std::size_t i = item.heap_pos;
      if (at == kInstantMax) {  // nothing left: out of the heap
        const std::size_t last = heap_.size() - 1;
        if (i != last) swap(i, last);
        heap_.pop_back();
        item.heap_pos = kNotQueued;
        if (i != last) {
          up(i);
          down(i);
        }
        return;
      }
      heap_[i].at = at;
      up(i);
      down(item.heap_pos);
      return;
    }
    if (at == kInstantMax) return;
    item.heap_pos = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back(Entry{at, tie, &item});
    up(item.heap_pos);
  }
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const { return heap_.size(); }
  /// The earliest key; kInstantMax when empty.
  [[nodiscard]] Instant next() const { return heap_.empty() ? kInstantMax : heap_.front().at; }
  /// The object with the earliest key. The heap must not be empty.
  [[nodiscard]] T& top() const { return *heap_.front().item; }
  /// What is wrong with the heap: an entry earlier than its parent, or an object that does not
  /// know its place; "" when nothing is (core/invariant.hpp).
  [[nodiscard]] std::string violation() const {
    for (std::size_t i = 0; i < heap_.size(); ++i) {
      if (heap_[i].item->heap_pos != i) return "heap entry " + std::to_string(i) + " thinks it is elsewhere";
      if (i > 0 && heap_[i] < heap_[(i - 1) / 2]) return "heap entry " + std::to_string(i) + " precedes its parent";
    }
    return {};
  }

 private:
  struct Entry {
    Instant at{};
    std::uint64_t tie = 0;
    T* item = nullptr;
    bool operator<(const Entry& o) const { return at != o.at ? at < o.at : tie < o.tie; }
  };
  void swap(std::size_t a, std::size_t b) {
    std::swap(heap_[a], heap_[b]);
    heap_[a].item->heap_pos = static_cast<std::uint32_t>(a);
    heap_[b].item->heap_pos = static_cast<std::uint32_t>(b);
  }
  void up(std::size_t i) {
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!(heap_[i] < heap_[parent])) return;
      swap(i, parent);
      i = parent;
    }
  }
  void down(std::size_t i) {
    for (;;) {
      std::size_t least = i;
      const std::size_t l = 2 * i + 1;
      const std::size_t r = l + 1;
      if (l < heap_.size() && heap_[l] < heap_[least]) least = l;
      if (r < heap_.size() && heap_[r] < heap_[least]) least = r;
      if (least == i) return;
      swap(i, least);
      i = least;
    }
  }
  SmallVector<Entry, N> heap_;
};

}  // namespace p2psip
