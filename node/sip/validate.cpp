#include "node/sip/validate.hpp"

#include <algorithm>
#include <array>

#include "core/address.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::sip {
namespace {

Rejection reject(bool request, std::string reason) {
  return Rejection{request ? 400 : 0, std::move(reason), HeaderId::Other, {}};
}

bool valid_call_id(std::string_view v) {
  // callid = word [ "@" word ]
  std::size_t at = v.find('@');
  auto word = [](std::string_view w) { return !w.empty() && std::all_of(w.begin(), w.end(), is_word_char); };
  if (at == std::string_view::npos) return word(v);
  return word(v.substr(0, at)) && word(v.substr(at + 1));
}

bool contains_ci(const std::vector<std::string>& list, std::string_view item) {
  return std::any_of(list.begin(), list.end(), [&](const std::string& s) { return iequals(s, item); });
}

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

}  // namespace

std::optional<Rejection> check_message(const Message& m) {
  std::optional<Via> top;
  return check_message(m, top);
}

std::optional<Rejection> check_message(const Message& m, std::optional<Via>& top) {
  top.reset();
  const bool req = m.is_request();
  if (req && !parse_uri(m.request_uri())) return reject(true, "Malformed Request-URI");

  struct Required {
    HeaderId id;
    const char* missing;
  };
  static constexpr Required kRequired[] = {{HeaderId::Via, "Missing Via"},
                                           {HeaderId::From, "Missing From"},
                                           {HeaderId::To, "Missing To"},
                                           {HeaderId::CallId, "Missing Call-ID"},
                                           {HeaderId::CSeq, "Missing CSeq"}};
  // One pass counts every interpreted header.
  std::array<std::uint16_t, static_cast<std::size_t>(HeaderId::Count_)> counts{};
  for (const auto& h : m.headers()) ++counts[static_cast<std::size_t>(h.id)];
  auto count = [&](HeaderId id) { return counts[static_cast<std::size_t>(id)]; };
  for (const auto& r : kRequired) {
    if (count(r.id) == 0) return reject(req, r.missing);
  }
  // RFC 4475 §3.3.8: header fields that take one value must appear once.
  static constexpr HeaderId kSingle[] = {HeaderId::From,         HeaderId::To,          HeaderId::CallId,
                                         HeaderId::CSeq,         HeaderId::MaxForwards, HeaderId::ContentType,
                                         HeaderId::Expires,      HeaderId::MinExpires,  HeaderId::ContentDisposition,
                                         HeaderId::ContentLength};
  for (HeaderId id : kSingle) {
    if (count(id) > 1) return reject(req, "Multiple " + std::string(canonical_name(id)) + " Values");
  }

  auto cseq = parse_cseq(*m.header(HeaderId::CSeq));
  if (!cseq) return reject(req, "Malformed CSeq");
  // RFC 4475 §3.1.2.17: the CSeq method must match the request's method.
  if (req && cseq->method != m.method()) return reject(true, "CSeq Method Mismatch");
  if (!valid_call_id(*m.header(HeaderId::CallId))) return reject(req, "Malformed Call-ID");
  if (!valid_name_address(*m.header(HeaderId::From))) return reject(req, "Malformed From");
  if (!valid_name_address(*m.header(HeaderId::To))) return reject(req, "Malformed To");

  std::vector<NameAddress> addresses;
  std::vector<std::string_view> tokens;
  std::vector<MediaType> media;
  for (const auto& h : m.headers()) {
    std::string_view v = m.value_of(h);
    bool ok = true;
    switch (h.id) {
      case HeaderId::Via: ok = valid_via_list(v, top ? nullptr : &top); break;
      case HeaderId::Contact:
        addresses.clear();
        ok = parse_name_address_list(v, addresses, true);
        for (const auto& a : addresses) {
          // Contact expires is delta-seconds, at most 2**32-1 (RFC 4475 §3.1.2.4).
          if (auto e = a.params.get("expires"); ok && e && !parse_decimal(*e, UINT32_MAX)) ok = false;
        }
        break;
      case HeaderId::Route:
      case HeaderId::RecordRoute:
        addresses.clear();
        ok = parse_name_address_list(v, addresses, false);
        break;
      case HeaderId::MaxForwards: ok = parse_uint_header(v, 255).has_value(); break;
      case HeaderId::Expires:
      case HeaderId::MinExpires: ok = parse_uint_header(v, UINT32_MAX).has_value(); break;
      case HeaderId::Require:
      case HeaderId::ProxyRequire:
      case HeaderId::Supported:
      case HeaderId::Unsupported:
      case HeaderId::Allow:
        tokens.clear();
        ok = parse_token_list(v, tokens);
        break;
      case HeaderId::ContentType: ok = parse_media_type(v).has_value(); break;
      case HeaderId::Accept:
        media.clear();
        ok = parse_media_range_list(v, media);
        break;
      default: break;
    }
    if (!ok) return reject(req, "Malformed " + std::string(canonical_name(h.id)));
  }
  return std::nullopt;
}

std::optional<Rejection> check_request_capabilities(const Message& request, const Capabilities& caps) {
  // §8.2.1 Method inspection.
  if (!contains_ci(caps.methods, request.method())) {
    if (request.method_id() == Method::Other) return Rejection{501, "Not Implemented", HeaderId::Other, {}};
    return Rejection{405, "Method Not Allowed", HeaderId::Allow, join(caps.methods)};
  }
  // §8.2.2.1 To and Request-URI: a scheme we do not understand is answered 416.
  auto ruri = parse_uri(request.request_uri());
  if (!ruri || !contains_ci(caps.uri_schemes, ruri->scheme_text)) {
    return Rejection{416, "Unsupported URI Scheme", HeaderId::Other, {}};
  }
  // §8.2.2.3 Require: never applied to ACK or CANCEL.
  if (request.method_id() != Method::Ack && request.method_id() != Method::Cancel) {
    std::vector<std::string_view> tags;
    std::string unsupported;
    request.for_each(HeaderId::Require, [&](std::string_view v) { parse_token_list(v, tags); });
    for (auto t : tags) {
      if (!contains_ci(caps.option_tags, t)) {
        if (!unsupported.empty()) unsupported += ", ";
        unsupported += t;
      }
    }
    if (!unsupported.empty()) return Rejection{420, "Bad Extension", HeaderId::Unsupported, unsupported};
  }
  // §8.2.3 Content processing: a body we cannot read is answered 415 with what we can read, unless
  // its Content-Disposition marks it optional.
  if (!request.body().empty()) {
    auto ct = request.header(HeaderId::ContentType);
    auto mt = ct ? parse_media_type(*ct) : std::nullopt;
    bool understood = false;
    if (mt) {
      std::string full = std::string(mt->type) + "/" + std::string(mt->subtype);
      understood = contains_ci(caps.content_types, full);
    }
    bool optional_body = false;
    if (auto cd = request.header(HeaderId::ContentDisposition)) {
      optional_body = cd->find("handling=optional") != std::string_view::npos;
    }
    if (!understood && !optional_body) {
      return Rejection{415, "Unsupported Media Type", HeaderId::Accept, join(caps.content_types)};
    }
  }
  // RFC 3261 §21.4.7: an INVITE whose Accept excludes the body we would answer with gets 406.
  if (request.method_id() == Method::Invite && !caps.answer_type.empty()) {
    if (auto accept = request.header(HeaderId::Accept)) {
      std::vector<MediaType> ranges;
      request.for_each(HeaderId::Accept, [&](std::string_view v) { parse_media_range_list(v, ranges); });
      auto slash = caps.answer_type.find('/');
      std::string_view t = std::string_view(caps.answer_type).substr(0, slash);
      std::string_view st = std::string_view(caps.answer_type).substr(slash + 1);
      bool acceptable = std::any_of(ranges.begin(), ranges.end(), [&](const MediaType& r) { return r.covers(t, st); });
      if (!acceptable) return Rejection{406, "Not Acceptable", HeaderId::Accept, caps.answer_type};
    }
  }
  return std::nullopt;
}

bool forbidden_destination(const Via& via) {
  // The address a response would go to: maddr, else received, else sent-by (RFC 3261 §18.2.2).
  std::string_view host = via.params.get("maddr").value_or(via.params.get("received").value_or(via.host));
  if (!host.empty() && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto ip = IpAddress::parse(host);
  return ip && ip->is_broadcast_or_multicast() && !via.params.has("maddr");
}

std::optional<Rejection> check_forwardable(const Message& request) {
  auto mf = request.header(HeaderId::MaxForwards);
  if (mf && parse_uint_header(*mf, 255).value_or(1) == 0) return Rejection{483, "Too Many Hops", HeaderId::Other, {}};
  return std::nullopt;
}

namespace {
/// False only when no "tag" (in any case) occurs in `value`, so that it cannot hold a tag parameter.
bool may_name_tag(std::string_view value) {
  for (std::size_t i = 0; i + 3 <= value.size(); ++i) {
    if ((value[i] | 0x20) == 't' && (value[i + 1] | 0x20) == 'a' && (value[i + 2] | 0x20) == 'g') return true;
  }
  return false;
}
}  // namespace

Message make_response(const Message& request, int status, std::string_view reason, std::string_view to_tag) {
  Message r = Message::response(status, reason);
  for (const auto& h : request.headers()) {
    switch (h.id) {
      case HeaderId::Via:
      case HeaderId::From:
      case HeaderId::CallId:
      case HeaderId::CSeq: r.add_header(h.id, request.value_of(h)); break;
      case HeaderId::To: {
        std::string_view to = request.value_of(h);
        // Parsed only when a tag may be added and the value holds the letters of one: this runs
        // for every response, and a request that starts a transaction seldom has a To tag.
        if (status > 100 && !to_tag.empty() &&
            (!may_name_tag(to) || !parse_name_address(to).value_or(NameAddress{}).params.has("tag"))) {
          r.add_header_writing(HeaderId::To, [&](std::string& out) { out.append(to).append(";tag=").append(to_tag); });
        } else {
          r.add_header(HeaderId::To, to);
        }
        break;
      }
      case HeaderId::Timestamp:
        if (status == 100) r.add_header(h.id, request.value_of(h));  // RFC 3261 §8.2.6.1
        break;
      default: break;
    }
  }
  return r;
}

Message make_rejection(const Message& request, const Rejection& rej, std::string_view to_tag) {
  Message r = make_response(request, rej.status, rej.reason, to_tag);
  if (rej.extra_header != HeaderId::Other) r.add_header(rej.extra_header, rej.extra_value);
  return r;
}

std::optional<std::string> make_error_response_raw(std::string_view bytes, int status, std::string_view reason) {
  // Copy the header lines an answer needs, unfolded, from the raw request.
  std::string vias;
  std::string others;
  std::size_t pos = bytes.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < bytes.size()) {
    std::size_t start = pos + 2;
    std::size_t end = bytes.find("\r\n", start);
    if (end == std::string_view::npos || end == start) break;
    while (end + 2 < bytes.size() && is_wsp(bytes[end + 2])) {
      std::size_t next = bytes.find("\r\n", end + 2);
      if (next == std::string_view::npos) break;
      end = next;
    }
    std::string_view line = bytes.substr(start, end - start);
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
      HeaderId id = lookup_header(name);
      std::string_view value = line.substr(colon + 1);
      Scanner s(value);
      s.skip_lws();
      value = s.rest();
      if (value.find('\r') == std::string_view::npos && value.find('\n') == std::string_view::npos) {
        std::string field = std::string(canonical_name(id)) + ": " + std::string(value) + "\r\n";
        if (id == HeaderId::Via) vias += field;
        if (id == HeaderId::From || id == HeaderId::To || id == HeaderId::CallId || id == HeaderId::CSeq) {
          others += field;
        }
      }
    }
    pos = end;
  }
  if (vias.empty()) return std::nullopt;
  std::string out = "SIP/2.0 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += vias;
  out += others;
  out += "Content-Length: 0\r\n\r\n";
  return out;
}

}  // namespace p2psip::sip
