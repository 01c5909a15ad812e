// An in-memory network for tests, on the simulator's engine: what a test's network does later (a
// message's delivery after its latency, a timeout) is queued here as an action, and run_for moves
// time on, instant by instant. At each instant every action due runs first, in the order it was
// queued, then the test wakes whatever is due (its nodes, its phones). Tests advance time by hand
// and a run repeats exactly; nothing reads a clock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "sim/engine.hpp"

namespace p2psip::sim {

class VirtualNetwork {
 public:
  /// Runs `action` at `at` (if that is past, at the next instant run_for reaches).
  void at(Instant at, std::function<void()> action) {
    std::uint64_t slot = 0;
    if (free_.empty()) {
      slot = actions_.size();
      actions_.emplace_back();
    } else {
      slot = free_.back();
      free_.pop_back();
    }
    actions_[slot] = std::move(action);
    engine_.push(at, 0, 0, slot);
  }
  [[nodiscard]] std::size_t pending() const { return engine_.pending(); }

  /// Runs the network for `d` from `clock`, the test's view of the time (which it may have set
  /// forward since the last run); `clock` follows the network's time throughout and ends at
  /// clock + d. The next instant is the earlier of the next action and `next_wakeup()`; there,
  /// the actions due run, then `wake(now)`.
  template <class NextWakeup, class Wake>
  void run_for(Instant& clock, Duration d, NextWakeup&& next_wakeup, Wake&& wake) {
    const Instant end = clock + d;
    engine_.set_now(std::max(engine_.now(), clock));
    for (;;) {
      const Instant next = std::min(next_wakeup(), engine_.next_time());
      if (next > end) break;
      clock = std::max(clock, next);
      engine_.advance_to(clock);
      Event e;
      while (engine_.take(clock, e)) {
        std::function<void()> action = std::move(actions_[e.arg]);
        free_.push_back(e.arg);
        action();
      }
      wake(clock);
    }
    clock = end;
    engine_.advance_to(end);
  }

 private:
  Engine engine_;
  std::vector<std::function<void()>> actions_;  // by slot, while queued
  std::vector<std::uint64_t> free_;
};

}  // namespace p2psip::sim
