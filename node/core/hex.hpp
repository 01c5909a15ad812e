// Fixed-width lowercase hex text for random tokens (branches, tags, Call-IDs): no printf on the
// per-message path.
#pragma once

#include <cstdint>
#include <string>

namespace p2psip {

/// Appends `v` as exactly 16 lowercase hex digits.
inline void append_hex64(std::string& out, std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kDigits[v & 0xf];
    v >>= 4;
  }
  out.append(buf, sizeof buf);
}

inline std::string hex64(std::uint64_t v) {
  std::string out;
  append_hex64(out, v);
  return out;
}

}  // namespace p2psip
