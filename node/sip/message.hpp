// SIP messages (RFC 3261 §7): parsing from a datagram, serialization, and the edits a stack makes.
//
// A Message owns one byte buffer. Parsing copies the received octets into it once; the start line,
// header names, header values and body are (offset, length) spans into that buffer, so parsing does
// no per-header allocation and a Message can be copied or moved without invalidating anything.
// Edits append their new text to the buffer and repoint spans; serialization writes the start line,
// the header list in order and the body.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "node/sip/header_names.hpp"

namespace p2psip::sip {

/// Limits enforced while parsing. Every field is configurable per node.
struct Limits {
  std::size_t max_message_bytes = std::size_t{64} * 1024;  ///< whole message; over it: 513 (RFC 3261 §21.5.14).
  std::size_t max_headers = 256;                           ///< header fields; over it: 513.
  std::size_t max_header_line = std::size_t{16} * 1024;    ///< one header field, folded lines included; over it: 513.
  std::size_t max_body_bytes = std::size_t{60} * 1024;     ///< body; over it: 413 (RFC 3261 §21.4.11).
};

/// Why a message could not be accepted. `status` is what an element answers (400, 413, 505, 513);
/// 0 means the message is to be discarded without an answer (responses, or unreadable requests).
struct ParseError {
  int status = 400;
  std::string reason;  ///< a short human-readable reason, used as the response's reason phrase.
};

/// Known methods get an id; others keep their text (method() returns it).
enum class Method : std::uint8_t {
  Other,
  Invite,
  Ack,
  Bye,
  Cancel,
  Options,
  Register,
  Info,
  Update,
  Prack,
  Subscribe,
  Notify,
  Message,
  Refer,
  Publish
};
Method method_from_name(std::string_view name);  ///< case-sensitive, as RFC 3261 §7.1 requires.
std::string_view method_name(Method m);

struct Span {
  std::uint32_t off = 0;
  std::uint32_t len = 0;
};

struct HeaderField {
  HeaderId id = HeaderId::Other;
  Span name;   ///< as written (a compact or odd-case name stays as it came)
  Span value;  ///< leading and trailing whitespace removed; folded lines kept as they came
};

class Message {
 public:
  Message() = default;

  /// A new request with the given start line and no headers.
  static Message request(std::string_view method, std::string_view request_uri);
  /// A new response with the given status line and no headers.
  static Message response(int status, std::string_view reason);
  /// request() with a Request-URI that `write_uri(std::string&)` appends in place (no scratch string).
  template <class Write>
  static Message request_writing(std::string_view method, Write&& write_uri) {
    Message m = begin_request(method);
    m.start_[1] = m.written(write_uri);
    m.start_[2] = m.store("SIP/2.0");
    return m;
  }

  [[nodiscard]] bool is_request() const { return status_ == 0; }
  [[nodiscard]] bool is_response() const { return status_ != 0; }

  // Start line.
  [[nodiscard]] std::string_view method() const { return view(start_[0]); }  ///< requests only
  [[nodiscard]] Method method_id() const { return method_; }
  [[nodiscard]] std::string_view request_uri() const { return view(start_[1]); }  ///< requests only
  [[nodiscard]] int status() const { return status_; }                            ///< responses only
  [[nodiscard]] std::string_view reason() const { return view(start_[2]); }       ///< responses only

  // Headers.
  [[nodiscard]] const std::vector<HeaderField>& headers() const { return headers_; }
  [[nodiscard]] std::string_view name_of(const HeaderField& h) const { return view(h.name); }
  [[nodiscard]] std::string_view value_of(const HeaderField& h) const { return view(h.value); }
  /// The value of the first field with this id, or nullopt.
  [[nodiscard]] std::optional<std::string_view> header(HeaderId id) const;
  /// The value of the first field with this name (case-insensitive, compact forms understood).
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
  /// header(name) for a name the stack gives no id (an extension such as DHT-PeerID): no name
  /// lookup first. A name that has an id (or a compact form) finds nothing here.
  [[nodiscard]] std::optional<std::string_view> extension_header(std::string_view name) const;
  [[nodiscard]] std::size_t count(HeaderId id) const;
  /// Calls f(value) for every field with this id, in order.
  template <class F>
  void for_each(HeaderId id, F&& f) const {
    for (const auto& h : headers_) {
      if (h.id == id) f(view(h.value));
    }
  }

  [[nodiscard]] std::string_view body() const { return view(body_); }

  // Edits. Each keeps the rest of the message as it was.
  void set_request_uri(std::string_view uri);
  void add_header_front(HeaderId id, std::string_view value);  ///< before all others (a new Via)
  void add_header(HeaderId id, std::string_view value);        ///< after all others
  void add_header(std::string_view name, std::string_view value);
  /// add_header with a value that `write_value(std::string&)` appends in place: no scratch string.
  /// The writer appends to this message's own buffer, so it must not read this message's text.
  template <class Write>
  void add_header_writing(HeaderId id, Write&& write_value) {
    const Span name = store(canonical_name(id));
    headers_.push_back(HeaderField{id, name, written(write_value)});
  }
  template <class Write>
  void add_header_writing(std::string_view name, Write&& write_value) {
    const HeaderId id = lookup_header(name);
    const Span stored = store(id == HeaderId::Other ? name : canonical_name(id));
    headers_.push_back(HeaderField{id, stored, written(write_value)});
  }
  /// Replaces the value of the first field with this id, or appends one.
  void set_header(HeaderId id, std::string_view value);
  /// Removes the first field with this id; returns false when there was none.
  bool remove_first(HeaderId id);
  std::size_t remove_all(HeaderId id);
  /// Sets the body and the Content-Type (when non-empty); Content-Length is written by serialize().
  void set_body(std::string_view content_type, std::string_view body);
  /// Gives back the spare capacity edits left in the buffer and header list (for long-lived copies).
  void shrink_to_fit();
  /// Makes room for `bytes` more octets of edits, so that they do not grow the buffer by doubling.
  void reserve_extra(std::size_t bytes) { buf_.reserve(buf_.size() + bytes); }

  /// Writes the message. Content-Length is always written, with the body's real size.
  void serialize_to(std::string& out) const;
  [[nodiscard]] std::string serialize() const;
  /// serialize_to without the header fields named in `skip` (exact names, case-insensitive):
  /// what a signature over the message covers, the signature's own fields left out.
  /// `spare`: octets of capacity beyond the text to leave in `out` when it has to grow.
  void serialize_without(std::string& out, std::initializer_list<std::string_view> skip, std::size_t spare = 0) const;
  /// The spare room serialize() leaves: what a receiver's Via edits append.
  static constexpr std::size_t kReceiverEditRoom = 128;

  friend Result<Message, ParseError> parse_message_from(std::string_view, std::string*, const Limits&, bool,
                                                        std::size_t*);

 private:
  [[nodiscard]] std::string_view view(Span s) const { return {buf_.data() + s.off, s.len}; }
  Span store(std::string_view text);
  template <class Write>
  Span written(Write& write) {
    const auto off = static_cast<std::uint32_t>(buf_.size());
    write(buf_);
    return Span{off, static_cast<std::uint32_t>(buf_.size() - off)};
  }
  static Message begin_request(std::string_view method);

  std::string buf_;
  Span start_[3];
  int status_ = 0;
  Method method_ = Method::Other;
  std::vector<HeaderField> headers_;
  Span body_;
};

/// Parses one message from a datagram (RFC 3261 §18.3). Without Content-Length the body is the rest of
/// the datagram; with it, the body is that many octets and any octets after it are ignored
/// (RFC 4475 §3.1.1.8); a Content-Length larger than what arrived is an error (§3.1.2.2).
Result<Message, ParseError> parse_datagram(std::string_view bytes, const Limits& limits = {});

/// The general entry point. With `stream` set, a missing Content-Length is an error (RFC 3261 §18.3
/// requires it on stream transports) and `consumed` receives the message's size in octets.
Result<Message, ParseError> parse_message(std::string_view bytes, const Limits& limits, bool stream,
                                          std::size_t* consumed);

/// parse_message for a buffer that holds one message and that the caller gives up: on success the
/// message takes it, with no copy, and `bytes` is left empty; on failure `bytes` is as it was (for
/// answer_malformed). Octets after the message's end are dropped.
Result<Message, ParseError> parse_taking(std::string& bytes, const Limits& limits, bool stream);

/// The reason phrase RFC 3261 §21 gives a status code ("" for unknown codes).
std::string_view default_reason(int status);

}  // namespace p2psip::sip
