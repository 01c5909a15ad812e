// The timer that wakes a sans-I/O core when it asks to be woken. A core fed by several socket sets
// (a peer's overlay and phone addresses, each a SipRuntime) has one, which their runtimes share:
// each re-arms it after a delivery, and a wake-up advances the core once.
#pragma once

#include <uv.h>

#include "core/time.hpp"

namespace p2psip::runtime {

class PacketSink;

/// The loop's monotonic clock as the core's time.
Instant monotonic_now();

class Wakeup {
 public:
  /// `core` is asked for next_wakeup() and advanced; it must outlive the wake-up.
  Wakeup(uv_loop_t* loop, PacketSink& core);
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  /// Re-arms the timer from the core's next_wakeup(): after anything that may have changed it (a
  /// delivery, a call into the core from outside).
  void rearm();
  /// Closes the timer's handle (the loop then runs out); rearm() does nothing afterwards.
  void close();

 private:
  static void on_timer(uv_timer_t* t);
  uv_timer_t timer_{};
  PacketSink& core_;
  bool open_ = true;
};

}  // namespace p2psip::runtime
