// Lowercase hex text: fixed-width tokens (branches, tags, Call-IDs) without printf on the
// per-message path, and byte strings (keys, signatures) both ways.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace p2psip {

namespace hex_detail {
inline constexpr std::uint64_t kEach = 0x0101010101010101ULL;  // one in every byte

/// Eight nibbles (the first in the top bits) as eight lowercase hex digits, the first in the lowest
/// byte (a little-endian store writes them in order). SWAR: each nibble moves to its own byte,
/// then '0' is added, plus 'a' - '0' - 10 (0x27) where the nibble is 10 or more (bit 4 of n + 6).
inline std::uint64_t digits_of(std::uint32_t x) {
  std::uint64_t z = __builtin_bswap32(x);                                   // byte k: digits 2k and 2k+1
  z = (z | z << 16) & 0x0000ffff0000ffffULL;                                // bytes 0-1 and 2-3 into 32-bit lanes
  z = (z | z << 8) & 0x00ff00ff00ff00ffULL;                                 // byte k into 16-bit lane k
  z = (z >> 4 & 0x000f000f000f000fULL) | (z << 8 & 0x0f000f000f000f00ULL);  // high nibble first
  return z + kEach * '0' + ((z + kEach * 6) >> 4 & kEach) * 0x27;
}

/// Eight hex digits of either case (the first in the lowest byte) as their value, the first digit
/// in the top bits; false for anything else. Each byte is tested for 0-9 and, lowered, for a-f:
/// with the top bits clear, b + (0x80 - lo) sets bit 7 exactly when b >= lo and b + (0x7f - hi)
/// exactly when b > hi, no carry crossing into the next byte.
inline bool value_of(std::uint64_t x, std::uint32_t& out) {
  constexpr std::uint64_t kTop = kEach * 0x80;
  auto in_range = [](std::uint64_t b, std::uint8_t lo, std::uint8_t hi) {
    return (b + kEach * (0x80 - lo)) & ~(b + kEach * (0x7f - hi)) & kTop;
  };
  const std::uint64_t digit = in_range(x, '0', '9');
  const std::uint64_t letter = in_range(x | kEach * 0x20, 'a', 'f');
  if ((x & kTop) != 0 || (digit | letter) != kTop) return false;
  std::uint64_t v = (x & kEach * 0x0f) + (letter >> 7) * 9;  // 'a' and 'A' are 1 in their low nibble
  v = (v << 4 | v >> 8) & 0x00ff00ff00ff00ffULL;             // digit pairs into 16-bit lanes
  v = (v | v >> 8) & 0x0000ffff0000ffffULL;
  v = (v | v >> 16) & 0xffffffffULL;
  out = __builtin_bswap32(static_cast<std::uint32_t>(v));
  return true;
}
}  // namespace hex_detail

/// Writes `v` as exactly 16 lowercase hex digits at `out`.
inline void write_hex64(char* out, std::uint64_t v) {
  static_assert(std::endian::native == std::endian::little, "hex_detail packs digits for little-endian stores");
  const std::uint64_t high = hex_detail::digits_of(static_cast<std::uint32_t>(v >> 32));
  const std::uint64_t low = hex_detail::digits_of(static_cast<std::uint32_t>(v));
  std::memcpy(out, &high, 8);
  std::memcpy(out + 8, &low, 8);
}

/// Reads exactly 16 hex digits (either case) at `in` into `v`; false (`v` unspecified) for any
/// other character.
inline bool read_hex64(const char* in, std::uint64_t& v) {
  std::uint64_t a = 0, b = 0;
  std::memcpy(&a, in, 8);
  std::memcpy(&b, in + 8, 8);
  std::uint32_t high = 0, low = 0;
  if (!hex_detail::value_of(a, high) || !hex_detail::value_of(b, low)) return false;
  v = std::uint64_t{high} << 32 | low;
  return true;
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
