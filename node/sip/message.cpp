#include "node/sip/message.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "node/sip/scanner.hpp"

namespace p2psip::sip {
namespace {

constexpr std::string_view kCrlf = "\r\n";
/// A message built by a stack starts with room for a typical overlay message (700-900 octets with
/// its DHT-Link fields), so that adding headers does not copy the buffer again and again.
constexpr std::size_t kBuiltReserve = 1024;
constexpr std::size_t kBuiltHeaders = 20;  ///< an overlay response with its links has about 18 fields

bool version_is_sip20(std::string_view v) {
  return iequals(v, "SIP/2.0");
}

/// "SIP/" 1*DIGIT "." 1*DIGIT, any case: a version we can name but may not speak (505).
bool looks_like_sip_version(std::string_view v) {
  if (v.size() < 7 || !iequals(v.substr(0, 4), "SIP/")) return false;
  std::size_t i = 4;
  std::size_t major = 0;
  while (i < v.size() && is_digit(v[i])) ++i, ++major;
  if (major == 0 || i >= v.size() || v[i] != '.') return false;
  ++i;
  std::size_t minor = 0;
  while (i < v.size() && is_digit(v[i])) ++i, ++minor;
  return minor > 0 && i == v.size();
}

ParseError error(bool request, int status, std::string reason) {
  return ParseError{request ? status : 0, std::move(reason)};
}

}  // namespace

Method method_from_name(std::string_view n) {
  switch (n.size()) {
    case 3:
      if (n == "ACK") return Method::Ack;
      if (n == "BYE") return Method::Bye;
      break;
    case 4:
      if (n == "INFO") return Method::Info;
      break;
    case 5:
      if (n == "PRACK") return Method::Prack;
      if (n == "REFER") return Method::Refer;
      break;
    case 6:
      if (n == "INVITE") return Method::Invite;
      if (n == "CANCEL") return Method::Cancel;
      if (n == "UPDATE") return Method::Update;
      if (n == "NOTIFY") return Method::Notify;
      break;
    case 7:
      if (n == "OPTIONS") return Method::Options;
      if (n == "MESSAGE") return Method::Message;
      if (n == "PUBLISH") return Method::Publish;
      break;
    case 8:
      if (n == "REGISTER") return Method::Register;
      break;
    case 9:
      if (n == "SUBSCRIBE") return Method::Subscribe;
      break;
    default: break;
  }
  return Method::Other;
}

std::string_view method_name(Method m) {
  switch (m) {
    case Method::Invite: return "INVITE";
    case Method::Ack: return "ACK";
    case Method::Bye: return "BYE";
    case Method::Cancel: return "CANCEL";
    case Method::Options: return "OPTIONS";
    case Method::Register: return "REGISTER";
    case Method::Info: return "INFO";
    case Method::Update: return "UPDATE";
    case Method::Prack: return "PRACK";
    case Method::Subscribe: return "SUBSCRIBE";
    case Method::Notify: return "NOTIFY";
    case Method::Message: return "MESSAGE";
    case Method::Refer: return "REFER";
    case Method::Publish: return "PUBLISH";
    case Method::Other: break;
  }
  return "";
}

std::string_view default_reason(int s) {
  switch (s) {
    case 100: return "Trying";
    case 180: return "Ringing";
    case 181: return "Call Is Being Forwarded";
    case 182: return "Queued";
    case 183: return "Session Progress";
    case 200: return "OK";
    case 202: return "Accepted";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Moved Temporarily";
    case 305: return "Use Proxy";
    case 380: return "Alternative Service";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Unsupported URI Scheme";
    case 420: return "Bad Extension";
    case 421: return "Extension Required";
    case 423: return "Interval Too Brief";
    case 480: return "Temporarily Unavailable";
    case 481: return "Call/Transaction Does Not Exist";
    case 482: return "Loop Detected";
    case 483: return "Too Many Hops";
    case 484: return "Address Incomplete";
    case 485: return "Ambiguous";
    case 486: return "Busy Here";
    case 487: return "Request Terminated";
    case 488: return "Not Acceptable Here";
    case 491: return "Request Pending";
    case 493: return "Undecipherable";
    case 500: return "Server Internal Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Server Time-out";
    case 505: return "Version Not Supported";
    case 513: return "Message Too Large";
    case 600: return "Busy Everywhere";
    case 603: return "Decline";
    case 604: return "Does Not Exist Anywhere";
    case 606: return "Not Acceptable";
    default: return "";
  }
}

void Message::shrink_to_fit() {
  buf_.shrink_to_fit();
  headers_.shrink_to_fit();
}

Span Message::store(std::string_view text) {
  Span s{static_cast<std::uint32_t>(buf_.size()), static_cast<std::uint32_t>(text.size())};
  buf_.append(text);
  return s;
}

Message Message::begin_request(std::string_view method) {
  Message m;
  m.buf_.reserve(kBuiltReserve);
  m.headers_.reserve(kBuiltHeaders);
  m.start_[0] = m.store(method);
  m.method_ = method_from_name(method);
  return m;
}

Message Message::request(std::string_view method, std::string_view request_uri) {
  Message m = begin_request(method);
  m.start_[1] = m.store(request_uri);
  m.start_[2] = m.store("SIP/2.0");
  return m;
}

Message Message::response(int status, std::string_view reason) {
  Message m;
  m.buf_.reserve(kBuiltReserve);
  m.headers_.reserve(kBuiltHeaders);
  m.start_[0] = m.store("SIP/2.0");
  m.status_ = status;
  m.start_[2] = m.store(reason.empty() ? default_reason(status) : reason);
  return m;
}

std::optional<std::string_view> Message::header(HeaderId id) const {
  for (const auto& h : headers_) {
    if (h.id == id) return view(h.value);
  }
  return std::nullopt;
}

std::optional<std::string_view> Message::header(std::string_view name) const {
  HeaderId id = lookup_header(name);
  if (id != HeaderId::Other) return header(id);
  return extension_header(name);
}

std::optional<std::string_view> Message::extension_header(std::string_view name) const {
  for (const auto& h : headers_) {
    if (h.id == HeaderId::Other && h.name.len == name.size() && iequals(view(h.name), name)) return view(h.value);
  }
  return std::nullopt;
}

std::size_t Message::count(HeaderId id) const {
  std::size_t n = 0;
  for (const auto& h : headers_) n += h.id == id ? 1 : 0;
  return n;
}

void Message::set_request_uri(std::string_view uri) {
  start_[1] = store(uri);
}

void Message::add_header_front(HeaderId id, std::string_view value) {
  HeaderField f{id, store(canonical_name(id)), store(value)};
  headers_.insert(headers_.begin(), f);
}

void Message::add_header(HeaderId id, std::string_view value) {
  HeaderField f{id, store(canonical_name(id)), store(value)};
  headers_.push_back(f);
}

void Message::add_header(std::string_view name, std::string_view value) {
  HeaderId id = lookup_header(name);
  HeaderField f{id, store(id == HeaderId::Other ? name : canonical_name(id)), store(value)};
  headers_.push_back(f);
}

void Message::set_header(HeaderId id, std::string_view value) {
  for (auto& h : headers_) {
    if (h.id == id) {
      h.value = store(value);
      return;
    }
  }
  add_header(id, value);
}

bool Message::remove_first(HeaderId id) {
  for (auto it = headers_.begin(); it != headers_.end(); ++it) {
    if (it->id == id) {
      headers_.erase(it);
      return true;
    }
  }
  return false;
}

std::size_t Message::remove_all(HeaderId id) {
  std::size_t before = headers_.size();
  std::erase_if(headers_, [id](const HeaderField& h) { return h.id == id; });
  return before - headers_.size();
}

void Message::set_body(std::string_view content_type, std::string_view body) {
  body_ = store(body);
  if (!content_type.empty()) {
    set_header(HeaderId::ContentType, content_type);
  } else if (body.empty()) {
    remove_all(HeaderId::ContentType);
  }
}

void Message::serialize_to(std::string& out) const {
  serialize_without(out, {});
}

void Message::serialize_without(std::string& out, std::initializer_list<std::string_view> skip,
                                std::size_t spare) const {
  // One pass sizes the text from above, a second copies it in place: no growth checks per piece.
  char len_text[24];
  const auto len_size =
      static_cast<std::size_t>(std::to_chars(len_text, len_text + sizeof len_text, body_.len).ptr - len_text);
  std::size_t bound = is_request() ? start_[0].len + start_[1].len + 11 : 14 + start_[2].len;
  for (const auto& h : headers_) bound += h.name.len + h.value.len + 4;
  bound += 16 + len_size + 2 + 2 + body_.len + len_size;  // a Content-Length line, the blank line, the body
  const std::size_t at = out.size();
  if (out.capacity() < at + bound) out.reserve(at + bound + spare);
  out.resize(at + bound);
  char* p = out.data() + at;
  auto put = [&p](std::string_view text) {
    if (text.empty()) return;
    std::memcpy(p, text.data(), text.size());
    p += text.size();
  };
  if (is_request()) {
    put(method());
    put(" ");
    put(request_uri());
    put(" SIP/2.0\r\n");
  } else {
    const char code[4] = {static_cast<char>('0' + status_ / 100), static_cast<char>('0' + status_ / 10 % 10),
                          static_cast<char>('0' + status_ % 10), ' '};
    put("SIP/2.0 ");
    put(std::string_view(code, 4));
    put(reason());
    put(kCrlf);
  }
  const std::string_view length(len_text, len_size);
  bool wrote_length = false;
  for (const auto& h : headers_) {
    if (skip.size() != 0 && h.id == HeaderId::Other &&
        std::any_of(skip.begin(), skip.end(), [&](std::string_view n) { return iequals(view(h.name), n); })) {
      continue;
    }
    put(view(h.name));
    put(": ");
    if (h.id == HeaderId::ContentLength) {
      // Written once, at the first Content-Length's place, with the body's real size.
      if (wrote_length) {
        p -= h.name.len + 2;
        continue;
      }
      wrote_length = true;
      put(length);
    } else {
      put(view(h.value));
    }
    put(kCrlf);
  }
  if (!wrote_length) {
    put("Content-Length: ");
    put(length);
    put(kCrlf);
  }
  put(kCrlf);
  put(body());
  out.resize(static_cast<std::size_t>(p - out.data()));
}

std::string Message::serialize() const {
  std::string out;
  // A receiver that takes the buffer (parse_taking) edits the top Via in place: received and rport
  // (RFC 3261 §18.2.1, RFC 3581 §4) append a new value of about this size.
  serialize_without(out, {}, kReceiverEditRoom);
  return out;
}

Result<Message, ParseError> parse_datagram(std::string_view bytes, const Limits& limits) {
  return parse_message(bytes, limits, false, nullptr);
}

/// What both entry points run: `owned`, when given, is the buffer `bytes` views, taken on success.
Result<Message, ParseError> parse_message_from(std::string_view bytes, std::string* owned, const Limits& limits,
                                               bool stream, std::size_t* consumed);

Result<Message, ParseError> parse_message(std::string_view bytes, const Limits& limits, bool stream,
                                          std::size_t* consumed) {
  return parse_message_from(bytes, nullptr, limits, stream, consumed);
}

Result<Message, ParseError> parse_taking(std::string& bytes, const Limits& limits, bool stream) {
  return parse_message_from(bytes, &bytes, limits, stream, nullptr);
}

Result<Message, ParseError> parse_message_from(std::string_view bytes, std::string* owned, const Limits& limits,
                                               bool stream, std::size_t* consumed) {
  // RFC 3261 §7.5: CRLFs before the start line are ignored (keep-alives on streams).
  std::size_t lead = 0;
  while (lead + 1 < bytes.size() && bytes[lead] == '\r' && bytes[lead + 1] == '\n') lead += 2;
  std::string_view in = bytes.substr(lead);

  std::size_t line_end = in.find(kCrlf);
  if (line_end == std::string_view::npos) return unexpected(ParseError{0, "No complete start line"});
  std::string_view start = in.substr(0, line_end);
  bool request = !(start.size() >= 4 && iequals(start.substr(0, 4), "SIP/"));

  Message m;
  // Start line. Requests: Method SP Request-URI SP SIP-Version, single spaces (RFC 3261 §7.1,
  // RFC 4475 §3.1.2.9-10). Responses: SIP-Version SP Status-Code SP Reason-Phrase (§7.2).
  std::string_view parts[3];
  if (request) {
    std::size_t sp1 = start.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return unexpected(error(true, 400, "Malformed Request-Line"));
    parts[0] = start.substr(0, sp1);
    parts[1] = start.substr(sp1 + 1, sp2 - sp1 - 1);
    parts[2] = start.substr(sp2 + 1);
    if (parts[0].empty()) return unexpected(error(true, 400, "Malformed Request-Line"));
    for (char c : parts[0]) {
      if (!is_token_char(c)) return unexpected(error(true, 400, "Malformed Method"));
    }
    if (parts[1].empty()) return unexpected(error(true, 400, "Malformed Request-Line"));
    for (char c : parts[1]) {
      if (c == ' ' || c == '\t' || static_cast<unsigned char>(c) < 0x21) {
        return unexpected(error(true, 400, "Malformed Request-URI"));
      }
    }
    if (!version_is_sip20(parts[2])) {
      if (looks_like_sip_version(parts[2])) return unexpected(error(true, 505, "Version Not Supported"));
      return unexpected(error(true, 400, "Malformed Request-Line"));
    }
  } else {
    if (start.size() < 12 || !version_is_sip20(start.substr(0, 7)) || start[7] != ' ' || start[11] != ' ' ||
        !is_digit(start[8]) || !is_digit(start[9]) || !is_digit(start[10]) || start[8] < '1' || start[8] > '6') {
      return unexpected(ParseError{0, "Malformed Status-Line"});
    }
    m.status_ = (start[8] - '0') * 100 + (start[9] - '0') * 10 + (start[10] - '0');
    parts[0] = start.substr(0, 7);
    parts[2] = start.substr(12);
    for (char c : parts[2]) {
      if (c == '\r' || c == '\n') return unexpected(ParseError{0, "Malformed Reason-Phrase"});
    }
  }

  // Spans are offsets from the start line; the buffer that holds the message from there on is filled
  // (copied once, or taken) when the whole message has been read.
  const char* base = in.data();
  auto span_of = [&](std::string_view v) {
    return Span{static_cast<std::uint32_t>(v.data() - base), static_cast<std::uint32_t>(v.size())};
  };
  if (request) {
    m.start_[0] = span_of(parts[0]);
    m.start_[1] = span_of(parts[1]);
    m.start_[2] = span_of(parts[2]);
    m.method_ = method_from_name(parts[0]);
  } else {
    m.start_[0] = span_of(in.substr(0, 7));
    m.start_[2] = span_of(parts[2]);
  }

  // The header section ends at its first empty line, which the walk over the fields below finds.
  // Where the walk fails, the section as a whole is judged first, as if its end had been looked
  // for before any field: no end (400, or 513 past the size limit), or an end past the limit (513).
  // Only a section that is whole and within the limit is answered for the field.
  auto section_error = [&](ParseError field_error) {
    const std::size_t end = in.find("\r\n\r\n", line_end);
    if (end == std::string_view::npos) {
      if (in.size() > limits.max_message_bytes) return error(request, 513, "Message Too Large");
      return error(request, 400, "Incomplete header section");
    }
    if (end + 4 > limits.max_message_bytes) return error(request, 513, "Message Too Large");
    return field_error;
  };

  // Header fields (RFC 3261 §7.3): name *(SP/HTAB) ":" SWS value, continued over folded lines.
  m.headers_.reserve(24);
  std::size_t pos = line_end + 2;
  std::size_t head_end = 0;  // where the CRLF CRLF that ends the section starts
  std::optional<std::uint64_t> content_length;
  bool multiple_lengths = false;
  for (;;) {
    if (pos + 2 <= in.size() && in[pos] == '\r' && in[pos + 1] == '\n') {  // the empty line
      head_end = pos - 2;
      break;
    }
    std::size_t eol = in.find(kCrlf, pos);
    // Folded: the field goes on past a CRLF followed by whitespace (never the empty line's CR).
    while (eol != std::string_view::npos && eol + 2 < in.size() && is_wsp(in[eol + 2])) eol = in.find(kCrlf, eol + 2);
    if (eol == std::string_view::npos)
      return unexpected(section_error(error(request, 400, "Incomplete header section")));
    std::string_view line = in.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.size() > limits.max_header_line) {
      return unexpected(section_error(error(request, 513, "Header Field Too Long")));
    }
    if (m.headers_.size() >= limits.max_headers) {
      return unexpected(section_error(error(request, 513, "Too Many Header Fields")));
    }
    std::size_t i = 0;
    while (i < line.size() && is_token_char(line[i])) ++i;
    std::string_view name = line.substr(0, i);
    while (i < line.size() && is_wsp(line[i])) ++i;
    if (name.empty() || i >= line.size() || line[i] != ':') {
      return unexpected(section_error(error(request, 400, "Malformed Header Field")));
    }
    Scanner value_scan(line.substr(i + 1));
    value_scan.skip_lws();
    std::string_view value = value_scan.rest();
    while (!value.empty() && (is_wsp(value.back()) || value.back() == '\r' || value.back() == '\n')) {
      value.remove_suffix(1);
    }
    HeaderField f{lookup_header(name), span_of(name), span_of(value)};
    if (f.id == HeaderId::ContentLength) {
      // RFC 4475 §3.3.9: more than one Content-Length leaves the framing unknown.
      // On a datagram the message still parses (the body is the rest) and check_message refuses it.
      if (content_length) {
        if (stream) return unexpected(section_error(error(request, 400, "Multiple Content-Length Values")));
        multiple_lengths = true;
      }
      if (!value.empty() && value[0] == '-') {
        return unexpected(section_error(error(request, 400, "Negative Content-Length")));
      }
      content_length = parse_decimal(value, UINT32_MAX);
      if (!content_length) return unexpected(section_error(error(request, 400, "Malformed Content-Length")));
    }
    m.headers_.push_back(f);
  }
  const std::size_t body_start = head_end + 4;
  if (body_start > limits.max_message_bytes) return unexpected(error(request, 513, "Message Too Large"));

  // Body framing (RFC 3261 §18.3, §20.14).
  std::size_t available = in.size() - body_start;
  std::size_t body_len = 0;
  if (multiple_lengths) content_length.reset();
  if (content_length) {
    if (*content_length > limits.max_body_bytes) return unexpected(error(request, 413, "Request Entity Too Large"));
    if (*content_length > available) return unexpected(error(request, 400, "Content-Length Larger Than Message"));
    body_len = static_cast<std::size_t>(*content_length);
  } else {
    if (stream) return unexpected(error(request, 400, "Missing Content-Length"));
    body_len = available;
    if (body_len > limits.max_body_bytes) return unexpected(error(request, 413, "Request Entity Too Large"));
  }
  if (body_start + body_len > limits.max_message_bytes) return unexpected(error(request, 513, "Message Too Large"));
  const std::size_t size = body_start + body_len;
  if (owned != nullptr) {
    // Taken: what came before the start line and after the body is cut off in place.
    m.buf_ = std::move(*owned);
    m.buf_.resize(lead + size);
    if (lead > 0) m.buf_.erase(0, lead);
  } else {
    m.buf_.reserve(size + 256);  // room for a few edits (a Via's received and rport) without growing
    m.buf_.assign(in.data(), size);
  }
  m.body_ = Span{static_cast<std::uint32_t>(body_start), static_cast<std::uint32_t>(body_len)};
  if (consumed) *consumed = lead + size;
  return m;
}

}  // namespace p2psip::sip
