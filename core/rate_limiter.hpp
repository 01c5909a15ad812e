// Rate limits per key (a peer's address, a user): each key may spend `burst` requests at once and
// then `per_s` a second. Sans-I/O: the caller says what time it is.
//
// The limiter is GCRA, the virtual-scheduling form of a token bucket (ITU-T I.371): a key keeps
// only the instant at which its bucket would be full again (its "theoretical arrival time"). A key
// whose instant has passed is owed nothing and is forgotten at the next sweep, so the table holds
// the keys that are busy now, not every key ever seen. A new key starts a sweep when a second has
// passed since the last one, or when the table has doubled since (amortized constant time per new
// key), and the table never holds more than `max_keys`. A simulated node keeps one of these, so
// an idle table must cost next to nothing.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>

#include "core/time.hpp"

namespace p2psip {

struct RateLimit {
  double per_s = 200;  ///< sustained rate; 0 or less: unlimited
  double burst = 400;  ///< what may be spent at once (at least 1)
};

/// Says yes at most once per interval for each key: so that an offender is logged, not every
/// offence. Remembers at most `max_keys` keys (all forgotten beyond that: a few extra log lines).
template <class Key, class Hash>
class LogOnce {
 public:
  explicit LogOnce(Duration interval, std::size_t max_keys = 4096) : interval_(interval), max_keys_(max_keys) {}

  bool operator()(const Key& key, Instant now) {
    if (last_.size() >= max_keys_) last_.clear();
    auto [it, fresh] = last_.try_emplace(key, now);
    if (!fresh && now - it->second < interval_) return false;
    it->second = now;
    return true;
  }
  /// Forgets keys last logged more than an interval ago.
  void forget_before(Instant now) {
    std::erase_if(last_, [&](const auto& kv) { return kv.second + interval_ <= now; });
  }

 private:
  Duration interval_;
  std::size_t max_keys_;
  std::unordered_map<Key, Instant, Hash> last_;
};

template <class Key, class Hash>
class RateLimiter {
 public:
  /// `log_interval`: how often one key's offences may be logged (first_in).
  explicit RateLimiter(RateLimit limit, Duration log_interval = std::chrono::seconds(10), std::size_t max_keys = 65536)
      : limit_(limit),
        interval_(limit.per_s > 0 ? Duration(std::max<std::int64_t>(1, static_cast<std::int64_t>(1e6 / limit.per_s)))
                                  : Duration(0)),
        tolerance_(Duration(
            static_cast<std::int64_t>((std::max(limit.burst, 1.0) - 1) * 1e6 / (limit.per_s > 0 ? limit.per_s : 1)))),
        max_keys_(std::max<std::size_t>(max_keys, 1)),
        in_place_(std::min(kInPlace, max_keys_)),
        logged_(log_interval, max_keys_) {}

  /// Spends one request of `key` at `now`. Nullopt when it was within the limit; otherwise how long
  /// until the key may send again (for Retry-After), and nothing is spent.
  std::optional<Duration> take(const Key& key, Instant now) {
    if (limit_.per_s <= 0) return std::nullopt;
    auto [full_ptr, fresh] = entry(key, now);
    Instant& full = *full_ptr;
    full = std::max(full, now);
    const Duration ahead = full - now;  // how far the key is ahead of its sustained rate
    if (ahead > tolerance_) return ahead - tolerance_;
    full += interval_;
    if (fresh && (size() >= sweep_at_ || now >= next_sweep_)) sweep(now);
    return std::nullopt;
  }
  /// True at most once per log interval for `key`: so that an offender is logged, not every offence.
  bool first_in(const Key& key, Instant now) { return logged_(key, now); }

  /// Keys held now (busy ones, and idle ones not yet swept).
  [[nodiscard]] std::size_t size() const { return spilled() ? full_at_.size() : held_; }
  [[nodiscard]] const RateLimit& limit() const { return limit_; }

 private:
  static constexpr std::size_t kFirstSweep = 16;
  /// Keys held in the limiter itself, before a hash table is needed: a node hears from a handful
  /// of peers at a time, and finding one then reads no memory but the limiter's own.
  static constexpr std::size_t kInPlace = 8;
  struct Held {
    Key key{};
    Instant full{};
  };
  /// More keys at once than here_ holds: then all are in full_at_ (which is empty otherwise).
  [[nodiscard]] bool spilled() const { return !full_at_.empty(); }
  /// `key`'s instant, added as `now` when absent; and whether it was added.
  std::pair<Instant*, bool> entry(const Key& key, Instant now) {
    if (!spilled()) {
      for (std::size_t i = 0; i < held_; ++i) {
        if (here_[i].key == key) return {&here_[i].full, false};
      }
      if (held_ < in_place_) {
        here_[held_] = Held{key, now};
        return {&here_[held_++].full, true};
      }
      for (std::size_t i = 0; i < held_; ++i) full_at_.emplace(here_[i].key, here_[i].full);
      held_ = 0;
    }
    auto [it, fresh] = full_at_.try_emplace(key, now);
    return {&it->second, fresh};
  }
  void sweep(Instant now) {
    logged_.forget_before(now);
    next_sweep_ = now + std::chrono::seconds(1);
    if (!spilled()) {
      // A key whose instant has passed is owed nothing: held or not, it is treated the same.
      held_ = static_cast<std::size_t>(std::remove_if(here_.begin(), here_.begin() + static_cast<std::ptrdiff_t>(held_),
                                                      [now](const Held& h) { return h.full <= now; }) -
                                       here_.begin());
      sweep_at_ = std::min(std::max(2 * held_, kFirstSweep), max_keys_);
      return;
    }
    std::erase_if(full_at_, [now](const auto& kv) { return kv.second <= now; });
    // Every key left is over its sustained rate right now. At the cap a quarter of them go anyway
    // (a key forgotten starts again with a full burst: generous, never unfair to others), so that a
    // table full of busy keys is not scanned again for every new one.
    if (full_at_.size() >= max_keys_) {
      while (full_at_.size() > max_keys_ - max_keys_ / 4 - 1) full_at_.erase(full_at_.begin());
    }
    sweep_at_ = std::min(std::max(2 * full_at_.size(), kFirstSweep), max_keys_);
    if (full_at_.size() <= in_place_ / 2) {  // the flood is over: back in place, the table given back
      for (const auto& [key, full] : full_at_) here_[held_++] = Held{key, full};
      std::unordered_map<Key, Instant, Hash>().swap(full_at_);
    } else if (full_at_.bucket_count() > 8 * (full_at_.size() + kFirstSweep)) {
      full_at_.rehash(0);  // after a flood
    }
  }
  RateLimit limit_;
  Duration interval_;   ///< 1 / per_s
  Duration tolerance_;  ///< (burst - 1) / per_s: how far ahead of its rate a key may run
  std::size_t max_keys_;
  std::size_t sweep_at_ = kFirstSweep;
  Instant next_sweep_{};
  std::size_t in_place_;                            ///< how many keys here_ may hold: kInPlace, or max_keys_ if fewer
  std::array<Held, kInPlace> here_{};               ///< when each key's bucket is full again, up to in_place_ keys
  std::size_t held_ = 0;                            ///< keys in here_
  std::unordered_map<Key, Instant, Hash> full_at_;  ///< when each key's bucket is full again
  LogOnce<Key, Hash> logged_;                       ///< offenders, when last logged
};

}  // namespace p2psip
