// Character classes of RFC 3261 §25.1 and a small cursor over header text that understands
// linear white space, including line folding (CRLF followed by SP or HTAB).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace p2psip::sip {

constexpr bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}
constexpr bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
constexpr bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}
/// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
constexpr bool is_token_char(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '!':
    case '%':
    case '*':
    case '_':
    case '+':
    case '`':
    case '\'':
    case '~': return true;
    default: return false;
  }
}
/// mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
constexpr bool is_mark(char c) {
  switch (c) {
    case '-':
    case '_':
    case '.':
    case '!':
    case '~':
    case '*':
    case '\'':
    case '(':
    case ')': return true;
    default: return false;
  }
}
constexpr bool is_unreserved(char c) {
  return is_alnum(c) || is_mark(c);
}
/// word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" / "(" / ")" / "<" / ">" /
///           ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")  (Call-ID)
constexpr bool is_word_char(char c) {
  if (is_token_char(c)) return true;
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '{':
    case '}': return true;
    default: return false;
  }
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
    std::size_t start = pos_;
    while (pos_ < s_.size() && is_token_char(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
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
