#include "node/sip/stream_framer.hpp"

#include "node/sip/header_names.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::sip {
namespace {

/// Finds the Content-Length value in a header section; nullopt when absent, "" when malformed.
std::optional<std::string_view> find_content_length(std::string_view head, int& count) {
  std::optional<std::string_view> found;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    std::size_t start = pos + 2;
    std::size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && !line.empty() && !is_wsp(line[0])) {
      std::string_view name = line.substr(0, colon);
      while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
      if (lookup_header(name) == HeaderId::ContentLength) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && is_wsp(v.front())) v.remove_prefix(1);
        while (!v.empty() && is_wsp(v.back())) v.remove_suffix(1);
        ++count;
        found = v;
      }
    }
    pos = end;
  }
  return found;
}

}  // namespace

void StreamFramer::feed(std::string_view bytes) {
  if (off_ > 0 && off_ >= buf_.size() / 2) {
    buf_.erase(0, off_);
    off_ = 0;
  }
  buf_.append(bytes);
}

StreamFramer::Item StreamFramer::next() {
  Item item;
  if (failed_) return item;
  std::string_view in(buf_.data() + off_, buf_.size() - off_);
  // Keep-alives: CRLFCRLF is a ping; a lone CRLF (a pong, or padding) is skipped (RFC 5626 §3.5.1),
  // or, while a ping of ours waits, reported as its pong.
  while (in.size() >= 2 && in[0] == '\r' && in[1] == '\n') {
    if (pongs_due_ && !(in.size() >= 4 && in[2] == '\r' && in[3] == '\n')) {
      off_ += 2;
      pongs_due_ = false;
      item.kind = Kind::Pong;
      return item;
    }
    if (in.size() >= 4 && in[2] == '\r' && in[3] == '\n') {
      off_ += 4;
      item.kind = Kind::Ping;
      return item;
    }
    if (in.size() == 2 || (in.size() == 3 && in[2] == '\r')) return item;  // may be the start of a ping
    off_ += 2;
    in.remove_prefix(2);
  }
  std::size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (in.size() > limits_.max_message_bytes) {
      failed_ = true;
      item.kind = Kind::Error;
      item.error = ParseError{513, "Message Too Large"};
      item.raw.assign(in.substr(0, std::min<std::size_t>(in.size(), 8192)));
    }
    return item;
  }
  int count = 0;
  auto cl = find_content_length(in.substr(0, head_end + 2), count);
  std::size_t body_len = 0;
  bool request = !(in.size() >= 4 && iequals(in.substr(0, 4), "SIP/"));
  auto fail = [&](int status, std::string reason) {
    failed_ = true;
    item.kind = Kind::Error;
    item.error = ParseError{request ? status : 0, std::move(reason)};
    item.raw.assign(in.substr(0, head_end + 4));
    return item;
  };
  if (!cl) return fail(400, "Missing Content-Length");
  if (count > 1) return fail(400, "Multiple Content-Length Values");
  if (!cl->empty() && cl->front() == '-') return fail(400, "Negative Content-Length");
  auto value = parse_decimal(*cl, UINT32_MAX);
  if (!value) return fail(400, "Malformed Content-Length");
  if (*value > limits_.max_body_bytes) return fail(413, "Request Entity Too Large");
  body_len = static_cast<std::size_t>(*value);
  if (head_end + 4 + body_len > limits_.max_message_bytes) return fail(513, "Message Too Large");
  if (in.size() < head_end + 4 + body_len) return item;  // need more

  std::string_view window = in.substr(0, head_end + 4 + body_len);
  std::size_t consumed = 0;
  auto parsed = parse_message(window, limits_, true, &consumed);
  off_ += window.size();
  if (parsed) {
    item.kind = Kind::Message;
    item.message = std::move(parsed).value();
  } else {
    item.kind = Kind::Error;
    item.error = parsed.error();
    item.raw.assign(window);
  }
  return item;
}

}  // namespace p2psip::sip
