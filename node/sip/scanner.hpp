// Character classes of RFC 3261 §25.1 and a small cursor over header text that understands
// linear white space, including line folding (CRLF followed by SP or HTAB).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace p2psip::sip {

/// RFC 3261 §25.1 character classes, one table lookup each.
enum CharClass : std::uint16_t {
  kAlpha = 1 << 0,
  kDigit = 1 << 1,
  kHex = 1 << 2,
  kToken = 1 << 3,     ///< token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
  kMark = 1 << 4,      ///< mark: "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
  kWord = 1 << 5,      ///< word (Call-ID): token chars and ( ) < > : \ DQUOTE / [ ] ? { }
  kUser = 1 << 6,      ///< unreserved / user-unreserved: & = + $ , ; ? /
  kPassword = 1 << 7,  ///< unreserved / & = + $ ,
  kParam = 1 << 8,     ///< unreserved / param-unreserved: [ ] / : & + $
  kHeader = 1 << 9,    ///< unreserved / hnv-unreserved: [ ] / ? : + $
  kHost = 1 << 10,     ///< alphanum / "-" / "." / "_" (hostname characters, loosely)
  kUriText = 1 << 11,  ///< what a URI may hold at all: visible ASCII but < > DQUOTE (RFC 3261 §25.1)
};

namespace detail {
constexpr bool in(char c, const char* set) {
  for (; *set; ++set) {
    if (*set == c) return true;
  }
  return false;
}
constexpr std::uint16_t classify(char c) {
  std::uint16_t f = 0;
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  bool digit = c >= '0' && c <= '9';
  bool alnum = alpha || digit;
  bool mark = in(c, "-_.!~*'()");
  bool unreserved = alnum || mark;
  if (alpha) f |= kAlpha;
  if (digit) f |= kDigit;
  if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) f |= kHex;
  bool token = alnum || in(c, "-.!%*_+`'~");
  if (token) f |= kToken;
  if (mark) f |= kMark;
  if (token || in(c, "()<>:\\\"/[]?{}")) f |= kWord;
  if (unreserved || in(c, "&=+$,;?/")) f |= kUser;
  if (unreserved || in(c, "&=+$,")) f |= kPassword;
  if (unreserved || in(c, "[]/:&+$")) f |= kParam;
  if (unreserved || in(c, "[]/?:+$")) f |= kHeader;
  if (alnum || in(c, "-._")) f |= kHost;
  if (c > 0x20 && c < 0x7f && !in(c, "<>\"")) f |= kUriText;
  return f;
}
struct CharTable {
  std::uint16_t v[256] = {};
  constexpr CharTable() {
    for (int i = 1; i < 128; ++i) v[i] = classify(static_cast<char>(i));
  }
};
inline constexpr CharTable kChars;
}  // namespace detail

constexpr bool has_class(char c, std::uint16_t cls) {
  return (detail::kChars.v[static_cast<unsigned char>(c)] & cls) != 0;
}
/// The end of the run of characters of class `cls` (one CharClass bit) that starts at `from`:
/// eight at a time while a whole group is of the class, then one by one. For runs that are often
/// long (the 32 hex digits of every overlay identifier); most tokens are too short to gain.
inline std::size_t run_end(std::string_view s, std::size_t from, std::uint16_t cls) {
  const auto& v = detail::kChars.v;
  auto at = [&](std::size_t k) { return v[static_cast<unsigned char>(s[k])]; };
  std::size_t i = from;
  while (i + 8 <= s.size() &&
         (at(i) & at(i + 1) & at(i + 2) & at(i + 3) & at(i + 4) & at(i + 5) & at(i + 6) & at(i + 7) & cls) != 0) {
    i += 8;
  }
  while (i < s.size() && (at(i) & cls) != 0) ++i;
  return i;
}

// clang-format off
constexpr bool is_alpha(char c) { return has_class(c, kAlpha); }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) { return has_class(c, kAlpha | kDigit); }
constexpr bool is_hex(char c) { return has_class(c, kHex); }
constexpr bool is_wsp(char c) { return c == ' ' || c == '\t'; }
constexpr bool is_token_char(char c) { return has_class(c, kToken); }
constexpr bool is_mark(char c) { return has_class(c, kMark); }
constexpr bool is_unreserved(char c) { return has_class(c, kAlpha | kDigit | kMark); }
constexpr bool is_word_char(char c) { return has_class(c, kWord); }
// clang-format on

static_assert(is_token_char('%') && !is_token_char('@') && is_word_char('"') && is_word_char('\\'));
namespace detail {
/// Every character a sip/sips URI part accepts (user, password, host, port, parameters, headers,
/// their separators and %HH escapes) is URI text, so those parts need no separate pass for it.
constexpr bool parts_hold_only_uri_text() {
  for (int i = 0; i < 256; ++i) {
    const char c = static_cast<char>(i);
    const bool part = has_class(c, kUser | kPassword | kParam | kHeader | kHost | kHex) || in(c, "%@:;=&?[]");
    if (part && !has_class(c, kUriText)) return false;
  }
  return true;
}
static_assert(parts_hold_only_uri_text());
}  // namespace detail

static_assert(has_class('&', kUser) && !has_class('@', kUser) && has_class(':', kParam) && !has_class(';', kParam));

/// The position of the first of the four characters in `s`, or s.size(): eight octets at a time
/// (a zero octet of x ^ c marks c; see "Bit Twiddling Hacks", determine if a word has a zero byte).
inline std::size_t find_first_of4(std::string_view s, char a, char b, char c, char d) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  auto has_zero = [](std::uint64_t x) { return (x - kOnes) & ~x & kHighs; };
  const std::uint64_t pa = kOnes * static_cast<unsigned char>(a), pb = kOnes * static_cast<unsigned char>(b);
  const std::uint64_t pc = kOnes * static_cast<unsigned char>(c), pd = kOnes * static_cast<unsigned char>(d);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w = 0;
    __builtin_memcpy(&w, s.data() + i, 8);
    if (has_zero(w ^ pa) | has_zero(w ^ pb) | has_zero(w ^ pc) | has_zero(w ^ pd)) break;  // one of them is here
  }
  for (; i < s.size(); ++i) {
    const char x = s[i];
    if (x == a || x == b || x == c || x == d) return i;
  }
  return s.size();
}

/// Reads an unsigned decimal number, rejecting values above `max` (RFC 4475 §3.1.2.4: overlarge scalars).
std::optional<std::uint64_t> parse_decimal(std::string_view digits, std::uint64_t max);

/// A cursor over a header value. Whitespace skipping treats folded lines as LWS.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  [[nodiscard]] bool done() const { return pos_ >= s_.size(); }
  [[nodiscard]] char peek() const { return done() ? '\0' : s_[pos_]; }
  [[nodiscard]] std::size_t pos() const { return pos_; }
  void set_pos(std::size_t p) { pos_ = p; }
  [[nodiscard]] std::string_view rest() const { return s_.substr(pos_); }
  [[nodiscard]] std::string_view text() const { return s_; }
  void advance(std::size_t n = 1) { pos_ += n; }

  /// Skips SP, HTAB and CRLF/LF followed by SP or HTAB. Returns true when anything was skipped.
  bool skip_lws() {
    if (done() || (s_[pos_] != ' ' && s_[pos_] != '\t' && s_[pos_] != '\r' && s_[pos_] != '\n')) return false;
    std::size_t start = pos_;
    for (;;) {
      if (pos_ < s_.size() && is_wsp(s_[pos_])) {
        ++pos_;
      } else if (pos_ + 2 < s_.size() && s_[pos_] == '\r' && s_[pos_ + 1] == '\n' && is_wsp(s_[pos_ + 2])) {
        pos_ += 3;
      } else if (pos_ + 1 < s_.size() && s_[pos_] == '\n' && is_wsp(s_[pos_ + 1])) {
        pos_ += 2;
      } else {
        break;
      }
    }
    return pos_ != start;
  }
  /// Consumes `c` surrounded by optional LWS (SEMI, COMMA, EQUAL, SLASH, COLON of §25.1).
  bool separator(char c) {
    if (peek() == c) {  // the common case: no whitespace before it
      ++pos_;
      skip_lws();
      return true;
    }
    std::size_t save = pos_;
    skip_lws();
    if (peek() == c) {
      ++pos_;
      skip_lws();
      return true;
    }
    pos_ = save;
    return false;
  }
  bool consume(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  /// 1*token-char; empty view when there is none.
  std::string_view token() {
    const std::size_t start = pos_;
    std::size_t end = start;  // a local: the loop need not store pos_ on every character
    while (end < s_.size() && has_class(s_[end], kToken)) ++end;
    pos_ = end;
    return s_.substr(start, end - start);
  }
  /// A quoted-string including its quotes; nullopt when unterminated or containing a bare CR/LF.
  std::optional<std::string_view> quoted_string() {
    if (peek() != '"') return std::nullopt;
    std::size_t start = pos_++;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '\\') {
        // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
        if (pos_ + 1 >= s_.size()) return std::nullopt;
        char n = s_[pos_ + 1];
        if (n == '\r' || n == '\n' || static_cast<unsigned char>(n) > 0x7f) return std::nullopt;
        pos_ += 2;
        continue;
      }
      if (c == '"') {
        ++pos_;
        return s_.substr(start, pos_ - start);
      }
      if (c == '\r' || c == '\n') {
        // Only folding may appear inside a quoted string.
        std::size_t save = pos_;
        if (!skip_lws()) return std::nullopt;
        (void)save;
        continue;
      }
      ++pos_;
    }
    return std::nullopt;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace p2psip::sip
