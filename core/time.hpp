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

/// The wall clock: Unix time, in microseconds since 1970-01-01 UTC. It dates certificates' validity
/// and signed records' writing; a driver maps an Instant onto it (Environment::wall_time). A type
/// of its own, so that the core's virtual time is never taken for a date, nor a date for it.
struct WallClock {
  using rep = std::int64_t;
  using period = std::micro;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<WallClock>;
  static constexpr bool is_steady = false;
};
using WallTime = WallClock::time_point;

constexpr WallTime wall_from_unix_us(std::int64_t us) {
  return WallTime(WallClock::duration(us));
}
/// Microseconds and whole seconds (toward zero) since the Unix epoch, as written in messages and
/// records and compared with certificates' validity.
constexpr std::int64_t unix_us(WallTime t) {
  return t.time_since_epoch().count();
}
constexpr std::int64_t unix_seconds(WallTime t) {
  return unix_us(t) / 1000000;
}

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
