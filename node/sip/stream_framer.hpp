// Splits a byte stream (TCP, TLS) into SIP messages using Content-Length (RFC 3261 §18.3), fed in
// arbitrary chunks. Also recognises the RFC 5626 §3.5.1 keep-alive: a double CRLF "ping" between
// messages, which the peer expects answered with a single CRLF "pong".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "node/sip/message.hpp"

namespace p2psip::sip {

class StreamFramer {
 public:
  enum class Kind {
    NeedMore,  ///< nothing complete yet
    Message,   ///< `message` holds a parsed message
    Error,     ///< `error` says why; `raw` holds the offending bytes (to answer a request)
    Ping,      ///< a CRLFCRLF keep-alive arrived: answer with "\r\n"
    Pong,      ///< a lone CRLF arrived while a ping of ours waited for it (expect_pong)
  };
  struct Item {
    Kind kind = Kind::NeedMore;
    std::optional<sip::Message> message;
    ParseError error;
    std::string raw;
  };

  explicit StreamFramer(Limits limits = {}) : limits_(limits) {}

  /// Appends received bytes.
  void feed(std::string_view bytes);
  /// Extracts the next complete item. Call until it returns NeedMore.
  Item next();
  /// True once framing is lost (no or bad Content-Length, oversize): the connection must be closed.
  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] std::size_t buffered() const { return buf_.size() - off_; }
  /// We sent a ping on this stream: the next lone CRLF is its pong (RFC 5626 §4.4.1), reported as
  /// Kind::Pong, rather than padding or the start of a ping.
  void expect_pong() { pongs_due_ = true; }

 private:
  Limits limits_;
  std::string buf_;
  std::size_t off_ = 0;
  bool failed_ = false;
  bool pongs_due_ = false;
};

}  // namespace p2psip::sip
