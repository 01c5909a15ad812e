// A vector for the few elements a node keeps per transaction in flight (the transaction layer's
// pool, timer heap and list of ended transactions): usually none to a handful, many only on a busy
// real node.
//
// Up to N elements live inside the vector itself, so that reading them touches only the object
// that holds it (a node, which the simulator has already brought into cache) and not a separate
// allocation that no recent event touched. Past N they all move to a std::vector on the heap,
// which is given back when the vector is emptied (clear(), or pop_back() of the last element).
// Elements may move on growth: hold references only until the next push.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace p2psip {

template <class T, std::size_t N>
class SmallVector {
  static_assert(N > 0, "at least one element in place");

 public:
  SmallVector() = default;
  SmallVector(const SmallVector&) = delete;
  SmallVector& operator=(const SmallVector&) = delete;

  [[nodiscard]] std::size_t size() const { return big_ ? big_->size() : size_; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] bool in_place() const { return !big_; }

  T* data() { return big_ ? big_->data() : local_.data(); }
  const T* data() const { return big_ ? big_->data() : local_.data(); }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T& front() { return data()[0]; }
  const T& front() const { return data()[0]; }
  T& back() { return data()[size() - 1]; }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }

  T& push_back(T x) {
    if (big_) return big_->emplace_back(std::move(x));
    if (size_ == N) {
      big_ = std::make_unique<std::vector<T>>();
      big_->reserve(2 * N);
      for (std::size_t i = 0; i < N; ++i) {
        big_->push_back(std::move(local_[i]));
        local_[i] = T{};
      }
      size_ = 0;
      return big_->emplace_back(std::move(x));
    }
    local_[size_] = std::move(x);
    return local_[size_++];
  }
  T& emplace_back() { return push_back(T{}); }

  /// Removes the last element (what it held goes now). The vector must not be empty.
  void pop_back() {
    if (big_) {
      big_->pop_back();
      if (big_->empty()) big_.reset();  // a burst is over: back in place
      return;
    }
    local_[--size_] = T{};
  }

  void clear() {
    big_.reset();
    for (std::size_t i = 0; i < size_; ++i) local_[i] = T{};
    size_ = 0;
  }

 private:
  std::array<T, N> local_{};
  std::uint32_t size_ = 0;               // elements in local_
  std::unique_ptr<std::vector<T>> big_;  // every element, after more than N at once
};

}  // namespace p2psip
