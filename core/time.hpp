// Virtual time for the sans-I/O core. The core never reads a clock: every entry point takes `now`,
// and the driver (libuv runtime, simulator, test) decides what time it is.
#pragma once

#include <chrono>
#include <cstdint>

namespace p2psip {

/// A clock type with no now(): time points of it can only be handed in by a driver.
struct VirtualClock {
  using rep = std::int64_t;
  using period = std::micro;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<VirtualClock>;
  static constexpr bool is_steady = true;
};

using Duration = VirtualClock::duration;
using Instant = VirtualClock::time_point;

constexpr Instant kInstantMax = Instant(Duration(INT64_MAX));

constexpr Duration millis(std::int64_t ms) {
  return std::chrono::duration_cast<Duration>(std::chrono::milliseconds(ms));
}
constexpr Duration seconds(std::int64_t s) {
  return std::chrono::duration_cast<Duration>(std::chrono::seconds(s));
}
constexpr std::int64_t to_millis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace p2psip
