// The simulator's pending events: a 4-ary min-heap. Every event of a run passes through it, and at
// scale it holds millions; a node's four children sit side by side (two cache lines of 32-byte
// events), so a pop walks half the levels of a binary heap. Elements move into a hole instead of
// being swapped.
//
// The order is the one the comparison gives; with keys that are never equal (the simulator's
// (time, sequence)), every heap shape pops the same sequence, so a run is the same whatever the
// arity.
#pragma once

#include <cstddef>
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

}  // namespace p2psip::sim
