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
  /// Uniformly distributed random bits from the driver's seeded stream: reproducible, and so only
  /// for what may be predicted (timing jitter, choices among peers), never for anything secret or
  /// seen on the wire.
  virtual std::uint64_t random() = 0;
  /// Uniformly distributed random bits from a secure source: for everything secret or visible on
  /// the wire (keys, nonce keys, hash seeds, branches, tags, Call-IDs), which an observer of the
  /// wire must not be able to predict. The runtime draws them from libsodium (randombytes_buf); the
  /// simulator, the tests and the fuzzers from their seeded streams, so that their runs repeat.
  virtual std::uint64_t secure_random() = 0;
  /// `n` secure random bytes at `out` (secure_random, eight at a time).
  void secure_bytes(std::uint8_t* out, std::size_t n) {
    for (std::size_t i = 0; i < n; i += 8) {
      const std::uint64_t r = secure_random();
      for (std::size_t b = 0; b < 8 && i + b < n; ++b) out[i + b] = static_cast<std::uint8_t>(r >> (8 * b));
    }
  }
  /// The wall clock at core time `now`: what certificates' validity and signed records' writing
  /// times are measured in. The libuv runtime maps its monotonic clock onto the system's; tests
  /// take their virtual time as it is, the simulator from a fixed date.
  [[nodiscard]] virtual WallTime wall_time(Instant now) const {
    return wall_from_unix_us(now.time_since_epoch().count());
  }
  /// A log line; the driver decides where it goes and what level it keeps.
  virtual void log(LogLevel level, std::string_view text) {
    (void)level;
    (void)text;
  }
};

}  // namespace p2psip
