// The simulator's pending events. Every event of a run passes through them, and at scale there are
// millions. QuadHeap is a 4-ary min-heap: a node's four children sit side by side (two cache lines
// of 32-byte events), so a pop walks half the levels of a binary heap; elements move into a hole
// instead of being swapped. CalendarQueue (below) puts the near future in buckets and keeps only
// the current bucket as a QuadHeap; the simulator uses it.
//
// The order is the one the comparison gives; with keys that are never equal (the simulator's
// (time, sequence)), every queue pops the same sequence, so a run is the same whatever the
// structure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace p2psip::sim {

/// `Before(a, b)`: a is popped before b.
template <typename T, typename Before>
class QuadHeap {
 public:
  [[nodiscard]] bool empty() const { return v_.empty(); }
  [[nodiscard]] std::size_t size() const { return v_.size(); }
  [[nodiscard]] const T& top() const { return v_.front(); }
  /// The element popped after top() if nothing is pushed meanwhile (the first of the root's
  /// children); null when the heap holds fewer than two.
  [[nodiscard]] const T* second() const { return v_.size() < 2 ? nullptr : &v_[first_of(1, v_.size())]; }

  void push(T x) {
    std::size_t i = v_.size();
    v_.push_back(std::move(x));
    T moving = std::move(v_[i]);
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (!before_(moving, v_[parent])) break;
      v_[i] = std::move(v_[parent]);
      i = parent;
    }
    v_[i] = std::move(moving);
  }

  /// Removes and returns the first element. The heap must not be empty.
  T pop() {
    T out = std::move(v_.front());
    T last = std::move(v_.back());
    v_.pop_back();
    const std::size_t n = v_.size();
    if (n == 0) return out;
    std::size_t i = 0;
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= n) break;
      const std::size_t best = first_of(first, n);
      if (!before_(v_[best], last)) break;
      v_[i] = std::move(v_[best]);
      i = best;
    }
    v_[i] = std::move(last);
    return out;
  }

 private:
  /// The first of the (up to four) siblings from index `first`.
  [[nodiscard]] std::size_t first_of(std::size_t first, std::size_t n) const {
    std::size_t best = first;
    const std::size_t end = first + 4 < n ? first + 4 : n;
    for (std::size_t c = first + 1; c < end; ++c) {
      if (before_(v_[c], v_[best])) best = c;
    }
    return best;
  }

  std::vector<T> v_;
  [[no_unique_address]] Before before_{};
};

/// A calendar queue (Brown, CACM 1988) over a QuadHeap for the bucket being drained: the events of
/// the next 2^kBucketBits buckets of 2^kWidthBits ticks each wait unsorted in their bucket, later
/// ones in a QuadHeap, and only the bucket whose time has come is a heap. A simulation's events are
/// mostly deliveries due within a second, so a push is an append to a bucket that recent pushes
/// touched, and a pop sifts through a small heap that stays in cache, where one heap of millions
/// missed the cache on most levels of every pop.
///
/// `TimeOf(x)` is x's time in ticks (never negative); `Before` must order by that time first. The
/// pops are the order `Before` gives, as with a QuadHeap; only second() knows less (null when the
/// next element is in a later bucket).
template <typename T, typename Before, typename TimeOf, unsigned kWidthBits = 10, unsigned kBucketBits = 15>
class CalendarQueue {
 public:
  CalendarQueue() : buckets_(std::size_t{1} << kBucketBits) {}

  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] std::size_t size() const { return size_; }
  /// The first element. The queue must not be empty.
  [[nodiscard]] const T& top() const { return now_.top(); }
  /// The element popped after top() if nothing is pushed meanwhile; null when unknown (it lies in
  /// a later bucket) or when the queue holds fewer than two.
  [[nodiscard]] const T* second() const { return now_.second(); }

  void push(T x) {
    const std::uint64_t b = bucket_of(x);
    if (size_++ == 0) cur_ = b;  // an empty queue starts at the new element's bucket
    if (b <= cur_) {
      now_.push(std::move(x));
    } else if (b - cur_ < kBuckets) {
      append(buckets_[b & kMask], std::move(x));
    } else {
      far_.push(std::move(x));
    }
  }

  /// Removes and returns the first element. The queue must not be empty.
  T pop() {
    T out = now_.pop();
    if (--size_ != 0 && now_.empty()) refill();
    return out;
  }

 private:
  static constexpr std::uint64_t kBuckets = std::uint64_t{1} << kBucketBits;
  static constexpr std::uint64_t kMask = kBuckets - 1;

  [[nodiscard]] std::uint64_t bucket_of(const T& x) const { return time_of_(x) >> kWidthBits; }

  /// Moves on to the next bucket that holds anything and makes it the heap. Called with the heap
  /// empty and something left in the wheel or beyond it.
  void refill() {
    for (;;) {
      if (in_wheel_ == 0) {
        cur_ = bucket_of(far_.top());  // nothing nearer: jump to the first far element's bucket
      } else {
        ++cur_;
      }
      // Whatever beyond the wheel now falls within its reach moves in (the window moved by one).
      while (!far_.empty() && bucket_of(far_.top()) - cur_ < kBuckets) {
        T x = far_.pop();
        const std::uint64_t b = bucket_of(x);
        if (b <= cur_) {
          now_.push(std::move(x));
        } else {
          append(buckets_[b & kMask], std::move(x));
        }
      }
      Bucket& bucket = buckets_[cur_ & kMask];
      for (Block* block = bucket.head; block != nullptr;) {
        for (std::uint32_t i = 0; i < block->n; ++i) now_.push(std::move(block->items[i]));
        in_wheel_ -= block->n;
        Block* next = block->next;
        block->next = free_;  // the block just read is the next one written
        free_ = block;
        block = next;
      }
      bucket = Bucket{};
      if (!now_.empty()) return;
    }
  }

  // A bucket is a list of blocks of kBlock elements, taken from and given back to one free list:
  // the wheel holds what is in it and at most one part-filled block per bucket. (Vectors per
  // bucket either kept the busiest millisecond's capacity in every bucket, 3.8 M slots for 0.2 M
  // events at 100 000 nodes, or went back to malloc on every drain.)
  static constexpr std::uint32_t kBlock = 15;
  struct Block {
    T items[kBlock];
    std::uint32_t n = 0;
    Block* next = nullptr;
  };
  struct Bucket {
    Block* head = nullptr;
    Block* tail = nullptr;
  };
  void append(Bucket& bucket, T x) {
    if (bucket.tail == nullptr || bucket.tail->n == kBlock) {
      Block* block = free_;
      if (block != nullptr) {
        free_ = block->next;
      } else {
        blocks_.push_back(std::make_unique<Block>());
        block = blocks_.back().get();
      }
      block->n = 0;
      block->next = nullptr;
      (bucket.tail != nullptr ? bucket.tail->next : bucket.head) = block;
      bucket.tail = block;
    }
    bucket.tail->items[bucket.tail->n++] = std::move(x);
    ++in_wheel_;
  }

  QuadHeap<T, Before> now_;                     // the bucket cur_ (and anything pushed for an earlier one)
  std::vector<Bucket> buckets_;                 // bucket b at b mod kBuckets, for cur_ < b < cur_ + kBuckets
  std::vector<std::unique_ptr<Block>> blocks_;  // every block, in use or free
  Block* free_ = nullptr;
  QuadHeap<T, Before> far_;  // from cur_ + kBuckets on (as of when each was pushed)
  std::uint64_t cur_ = 0;
  std::size_t size_ = 0;
  std::size_t in_wheel_ = 0;
  [[no_unique_address]] TimeOf time_of_{};
};

}  // namespace p2psip::sim
