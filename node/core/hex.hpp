// Lowercase hex text: fixed-width tokens (branches, tags, Call-IDs) without printf on the
// per-message path, and byte strings (keys, signatures) both ways.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace p2psip {

/// Writes `v` as exactly 16 lowercase hex digits at `out`.
inline void write_hex64(char* out, std::uint64_t v) {
  // Two digits per byte from a table: eight steps instead of sixteen.
  static constexpr auto kPairs = [] {
    std::array<char, 512> t{};
    constexpr char kDigits[] = "0123456789abcdef";
    for (std::size_t b = 0; b < 256; ++b) {
      t[2 * b] = kDigits[b >> 4];
      t[2 * b + 1] = kDigits[b & 0xf];
    }
    return t;
  }();
  for (std::size_t i = 8; i-- > 0;) {
    const auto b = static_cast<std::size_t>(v & 0xff);
    out[2 * i] = kPairs[2 * b];
    out[2 * i + 1] = kPairs[2 * b + 1];
    v >>= 8;
  }
}

/// Appends `v` as exactly 16 lowercase hex digits.
inline void append_hex64(std::string& out, std::uint64_t v) {
  char buf[16];
  write_hex64(buf, v);
  out.append(buf, sizeof buf);
}

inline std::string hex64(std::uint64_t v) {
  std::string out;
  append_hex64(out, v);
  return out;
}

/// 16 hex digits held in place: a tag or Call-ID token that costs no allocation (a std::string of
/// 16 characters is one past the short-string buffer). Reads as a string_view while it lives.
class Hex64 {
 public:
  explicit Hex64(std::uint64_t v) { write_hex64(digits_.data(), v); }
  [[nodiscard]] std::string_view view() const { return {digits_.data(), digits_.size()}; }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)

 private:
  std::array<char, 16> digits_{};
};

/// Hex digit values (either case); 0xff for every other character.
inline constexpr std::array<std::uint8_t, 256> kHexValue = [] {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'A' + 10);
  return t;
}();

/// `n` bytes as 2n lowercase hex digits.
inline std::string hex_bytes(const std::uint8_t* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

/// Exactly 2n hex digits into `n` bytes; false (and `out` unspecified) on anything else.
inline bool parse_hex_bytes(std::string_view hex, std::uint8_t* out, std::size_t n) {
  if (hex.size() != 2 * n) return false;
  std::uint8_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t h = kHexValue[static_cast<unsigned char>(hex[2 * i])];
    const std::uint8_t l = kHexValue[static_cast<unsigned char>(hex[2 * i + 1])];
    bad |= h | l;
    out[i] = static_cast<std::uint8_t>((h & 0xf) << 4 | (l & 0xf));
  }
  return (bad & 0xf0) == 0;
}

}  // namespace p2psip
