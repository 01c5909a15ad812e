// A map for the few entries a node keeps per request in flight (Chord's pending requests, the
// overlay's outstanding transactions): usually none or one, now and then a handful, and many only
// on a busy real node.
//
// Up to N entries live inside the map itself, so that a lookup reads only the object that holds
// the map (a node, which the simulator has already brought into cache) and compares keys in order.
// Past N they all move to a hash map on the heap, which is given back when the map is empty again.
// Order is not kept (erase moves the last entry into the hole), and inserting or erasing may move
// entries: a pointer from find() is valid until the next insert or erase. Hold values that must
// stay put across callbacks by std::unique_ptr.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <unordered_map>
#include <utility>

namespace p2psip {

template <class K, class V, std::size_t N>
class SmallMap {
  static_assert(N > 0, "at least one entry in place");

 public:
  [[nodiscard]] std::size_t size() const { return big_ ? big_->size() : size_; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] bool contains(const K& key) const { return find(key) != nullptr; }

  V* find(const K& key) {
    if (big_) {
      auto it = big_->find(key);
      return it == big_->end() ? nullptr : &it->second;
    }
    for (std::size_t i = 0; i < size_; ++i) {
      if (local_[i].key == key) return &local_[i].value;
    }
    return nullptr;
  }
  const V* find(const K& key) const { return const_cast<SmallMap*>(this)->find(key); }

  /// The value under `key`, inserted value-initialized when absent.
  V& operator[](const K& key) {
    if (V* v = find(key)) return *v;
    if (!big_ && size_ == N) {
      big_ = std::make_unique<std::unordered_map<K, V>>();
      big_->reserve(2 * N);
      for (std::size_t i = 0; i < size_; ++i) {
        big_->emplace(local_[i].key, std::move(local_[i].value));
        local_[i] = Entry{};
      }
      size_ = 0;
    }
    if (big_) return (*big_)[key];
    local_[size_] = Entry{key, V{}};
    return local_[size_++].value;
  }

  /// Removes `key`'s entry; false when there was none.
  bool erase(const K& key) {
    if (big_) {
      if (big_->erase(key) == 0) return false;
      if (big_->empty()) big_.reset();  // a burst is over: back in place
      return true;
    }
    for (std::size_t i = 0; i < size_; ++i) {
      if (!(local_[i].key == key)) continue;
      --size_;
      if (i != size_) local_[i] = std::move(local_[size_]);
      local_[size_] = Entry{};  // what the entry held (a unique_ptr's object) goes now
      return true;
    }
    return false;
  }

 private:
  struct Entry {
    K key{};
    V value{};
  };
  std::array<Entry, N> local_{};
  std::size_t size_ = 0;                           // entries in local_
  std::unique_ptr<std::unordered_map<K, V>> big_;  // every entry, after more than N at once
};

}  // namespace p2psip
