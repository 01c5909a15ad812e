// A pool of objects named by ids that stay unambiguous: an id is the object's slot (low 32 bits)
// and the count of that slot's reuses (high 32 bits), never 0, and it names nothing once its object
// is released, until the slot has been reused 2^32 times. Each object has its own allocation, so
// that a reference to one stays valid while the pool grows (callbacks run with references held),
// and a released one gives its memory back at once.
//
// The first N slots live inside the pool (a SmallVector): the handful a node usually holds costs no
// separate allocation to reach. When the pool empties after a burst the slots go back in place; a
// new slot then starts from the highest generation given so far, so that no id a holder may still
// keep names a new object.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "core/small_vector.hpp"

namespace p2psip {

using PoolId = std::uint64_t;

template <class T, std::size_t N = 4>
class SlotPool {
 public:
  SlotPool() = default;
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  /// A new value-initialized object and its id.
  std::pair<PoolId, T*> create() {
    std::uint32_t index = free_head_;
    if (index != kNoSlot) {
      free_head_ = slots_[index].next_free;
    } else {
      index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back().generation = generation_floor_;
    }
    Slot& slot = slots_[index];
    slot.item = std::make_unique<T>();
    ++live_;
    if (++slot.generation == 0) slot.generation = 1;
    return {(PoolId{slot.generation} << 32) | index, slot.item.get()};
  }
  /// The object `id` names, or nullptr (released, or never given).
  [[nodiscard]] T* find(PoolId id) const {
    const std::uint32_t i = slot_of(id);
    if (id == 0 || i >= slots_.size() || !slots_[i].item) return nullptr;
    return slots_[i].generation == generation_of(id) ? slots_[i].item.get() : nullptr;
  }
  /// Destroys the object `id` names (nothing when none); its slot waits for reuse.
  void release(PoolId id) {
    if (find(id) == nullptr) return;
    Slot& slot = slots_[slot_of(id)];
    slot.item.reset();
    slot.next_free = free_head_;
    free_head_ = slot_of(id);
    --live_;
    if (live_ == 0 && !slots_.in_place()) {
      for (const Slot& s : slots_) generation_floor_ = std::max(generation_floor_, s.generation);
      slots_.clear();
      free_head_ = kNoSlot;
    }
  }
  [[nodiscard]] std::size_t size() const { return live_; }
  /// Calls f(id, object) for every live object, in slot order. `f` must not create or release.
  template <class F>
  void for_each(F&& f) const {
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].item) f((PoolId{slots_[i].generation} << 32) | i, *slots_[i].item);
    }
  }
  [[nodiscard]] bool in_place() const { return slots_.in_place(); }

 private:
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  static std::uint32_t slot_of(PoolId id) { return static_cast<std::uint32_t>(id); }
  static std::uint32_t generation_of(PoolId id) { return static_cast<std::uint32_t>(id >> 32); }
  /// Its object while one lives there, the count of its reuses and, while free, the next free
  /// slot. One array, so that taking a slot touches one line.
  struct Slot {
    std::unique_ptr<T> item;
    std::uint32_t generation = 0;
    std::uint32_t next_free = kNoSlot;
  };
  SmallVector<Slot, N> slots_;
  std::uint32_t free_head_ = kNoSlot;   // the free slots, a list through Slot::next_free
  std::size_t live_ = 0;                // slots holding an object
  std::uint32_t generation_floor_ = 0;  // the generation a new slot starts from
};

}  // namespace p2psip
