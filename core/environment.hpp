// What the sans-I/O core may ask of whoever drives it. The libuv runtime, the simulator, the tests
// and the fuzzers each implement this; the core never reaches a socket, clock or random device itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/address.hpp"
#include "core/time.hpp"

namespace p2psip {

enum class LogLevel : std::uint8_t { Debug, Info, Warn, Error };

class Environment {
 public:
  virtual ~Environment() = default;
  /// Sends bytes to a peer. Returns false when the transport reports an immediate failure (no
  /// connection, unreachable), which the caller treats as a transport error (RFC 3261 §17.1.4).
  /// Must not call back into the core.
  virtual bool send(const Endpoint& to, std::string_view bytes) = 0;
  /// send() for bytes the caller no longer needs: a driver that queues them (the simulator)
  /// takes the buffer instead of copying it. By default, send(to, bytes).
  virtual bool send_owned(const Endpoint& to, std::string&& bytes) { return send(to, std::string_view(bytes)); }
  /// Uniformly distributed random bits, from the driver's seeded stream.
  virtual std::uint64_t random() = 0;
  /// Wall-clock time at core time `now`, in microseconds since the Unix epoch: what certificates'
  /// validity and signed records' writing times are measured in. The libuv runtime maps its
  /// monotonic clock onto the system's; tests and the simulator take their virtual time as it is.
  [[nodiscard]] virtual std::int64_t unix_time_us(Instant now) const { return now.time_since_epoch().count(); }
  /// A log line; the driver decides where it goes and what level it keeps.
  virtual void log(LogLevel level, std::string_view text) {
    (void)level;
    (void)text;
  }
};

}  // namespace p2psip
