// The event engine: virtual time and the pending events, taken in (time, sequence) order, so that a
// scenario and a seed give the same run every time. It knows nothing of what the events mean: a
// kind, a host and an argument, as small as an event can be (32 bytes), because at scale there are
// millions of them pending. The simulator's models push events; its loop takes them out one at a
// time and dispatches them. Tests' in-memory networks (virtual_network.hpp) run on it too.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/time.hpp"
#include "sim/event_queue.hpp"

namespace p2psip::sim {

struct Event {
  Instant at;
  std::uint64_t seq = 0;  ///< ties at one instant go in the order the events were pushed
  std::uint8_t kind = 0;  ///< what the event is (the user's enumeration)
  std::uint32_t host = 0;
  std::uint64_t arg = 0;
  bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

class Engine {
 public:
  [[nodiscard]] Instant now() const { return now_; }
  /// Sets the clock before a run (a test that starts at a wall-clock date).
  void set_now(Instant t) { now_ = t; }
  /// Moves the clock on to `t` (never back): a run that reached the end of a slice.
  void advance_to(Instant t) { now_ = std::max(now_, t); }

  void push(Instant at, std::uint8_t kind, std::uint32_t host = 0, std::uint64_t arg = 0) {
    queue_.push(Event{at, seq_++, kind, host, arg});
  }
  /// Keeps the sequence numbers below `n` for push_reserved: events known from the start (a
  /// population's joins, each pushing the next) that must come before any other of their instant
  /// without all being pushed at once.
  void reserve(std::uint64_t n) { seq_ = std::max(seq_, n); }
  void push_reserved(Instant at, std::uint64_t seq, std::uint8_t kind, std::uint32_t host = 0, std::uint64_t arg = 0) {
    queue_.push(Event{at, seq, kind, host, arg});
  }

  /// Takes the next event if it is due at or before `until`, and moves the clock to it.
  bool take(Instant until, Event& e) {
    if (queue_.empty() || queue_.top().at > until) return false;
    e = queue_.pop();
    now_ = std::max(now_, e.at);
    ++taken_;
    return true;
  }
  [[nodiscard]] bool empty() const { return queue_.empty(); }
  /// When the next event is due; kInstantMax when none is pending.
  [[nodiscard]] Instant next_time() const { return queue_.empty() ? kInstantMax : queue_.top().at; }
  /// The next event and the one after it when known (for prefetching what they touch); null otherwise.
  [[nodiscard]] const Event* next() const { return queue_.empty() ? nullptr : &queue_.top(); }
  [[nodiscard]] const Event* after_next() const { return queue_.second(); }
  [[nodiscard]] std::uint64_t events_taken() const { return taken_; }
  [[nodiscard]] std::size_t pending() const { return queue_.size(); }

 private:
  struct Earlier {
    bool operator()(const Event& a, const Event& b) const { return b > a; }
  };
  struct TimeOf {  // in microseconds, the calendar queue's ticks
    std::uint64_t operator()(const Event& e) const {
      return static_cast<std::uint64_t>(e.at.time_since_epoch().count());
    }
  };
  CalendarQueue<Event, Earlier, TimeOf> queue_;  // buckets of 1.024 ms, 33.5 s of them
  std::uint64_t seq_ = 0;
  std::uint64_t taken_ = 0;
  Instant now_{};
};

}  // namespace p2psip::sim
