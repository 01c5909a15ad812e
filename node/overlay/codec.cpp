#include "node/overlay/codec.hpp"

#include <msgpack.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "nat/ice.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::overlay {
namespace {

using sip::HeaderId;

constexpr std::string_view kPeerId = "DHT-PeerID";
constexpr std::string_view kOp = "DHT-Op";
constexpr std::string_view kHops = "DHT-Hops";
constexpr std::string_view kRouting = "DHT-Routing";
constexpr std::string_view kFinal = "DHT-Final";
constexpr std::string_view kLink = "DHT-Link";
constexpr std::string_view kOrigin = "DHT-Origin";
constexpr std::string_view kExclude = "DHT-Exclude";
constexpr std::string_view kKind = "DHT-Kind";

/// Appends "<sip:HEX@IP:PORT>" (one string grown in place: every overlay message carries several),
/// with the URI parameter "attach" for a peer reached by Attach ("<sip:HEX@IP:PORT;attach>").
void append_peer_uri(std::string& out, const dht::Peer& p) {
  out += "<sip:";
  p.id.append_hex(out);
  out += '@';
  p.addr.append_host_port(out);
  if (p.attach) out += ";attach";
  out += '>';
}

void append_peer_header(std::string& out, const dht::Peer& p, std::string_view overlay) {
  append_peer_uri(out, p);
  out += ";overlay=";
  out += overlay;
  out += ";dht=Chord1.0";
}

void add_links(sip::Message& m, const std::vector<dht::Peer>& preds, const std::vector<dht::Peer>& succs) {
  auto add = [&](const dht::Peer& p, char kind, std::size_t n) {
    m.add_header_writing(kLink, [&](std::string& out) {
      append_peer_uri(out, p);
      out.append(";link=").append(1, kind);
      char num[8];
      out.append(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, n).ptr - num));
    });
  };
  for (std::size_t i = 0; i < preds.size(); ++i) add(preds[i], 'P', i + 1);
  for (std::size_t i = 0; i < succs.size(); ++i) add(succs[i], 'S', i + 1);
}

/// The single-valued DHT fields of a message (the first of each, as Message::extension_header
/// finds it), gathered in one pass over the header fields instead of one pass per name.
struct DhtFields {
  std::optional<std::string_view> peer_id, op, hops, routing, final_hop, exclude, kind;
};
DhtFields dht_fields(const sip::Message& m) {
  static_assert(kOp.size() == 6 && kHops.size() == 8 && kFinal.size() == 9 && kPeerId.size() == 10 &&
                kRouting.size() == 11 && kExclude.size() == 11 && kKind.size() == 8);
  DhtFields f;
  for (const auto& h : m.headers()) {
    if (h.id != HeaderId::Other) continue;
    const std::string_view name = m.name_of(h);
    std::optional<std::string_view>* slot = nullptr;
    switch (name.size()) {
      case 6: slot = sip::iequals(name, kOp) ? &f.op : nullptr; break;
      case 8: slot = sip::iequals(name, kHops) ? &f.hops : sip::iequals(name, kKind) ? &f.kind : nullptr; break;
      case 9: slot = sip::iequals(name, kFinal) ? &f.final_hop : nullptr; break;
      case 10: slot = sip::iequals(name, kPeerId) ? &f.peer_id : nullptr; break;
      case 11:
        slot = sip::iequals(name, kRouting) ? &f.routing : sip::iequals(name, kExclude) ? &f.exclude : nullptr;
        break;
      default: break;
    }
    if (slot != nullptr && !*slot) *slot = m.value_of(h);
  }
  return f;
}

/// One DHT-Link field: the peer and its role ('R', or 'S'/'P' with its number). False when malformed.
bool read_link(std::string_view value, dht::Peer& peer, char& kind, unsigned& number) {
  auto pv = read_peer_value(value);
  auto link = pv ? pv->params.get("link") : std::nullopt;
  if (!pv || !link || link->empty()) return false;
  peer = pv->peer;
  kind = (*link)[0];
  number = 0;
  if (kind == 'R') return link->size() == 1;
  if (kind != 'S' && kind != 'P') return false;
  auto n = sip::parse_decimal(link->substr(1), 64);
  if (!n || *n == 0) return false;
  number = static_cast<unsigned>(*n);
  return true;
}

bool is_link(const sip::Message& m, const sip::HeaderField& h) {
  return h.id == HeaderId::Other && sip::iequals(m.name_of(h), kLink);
}

/// Reads DHT-Link fields into predecessors (P1..Pn order), successors (S1..Sn) and the responsible peer.
bool read_links(const sip::Message& m, std::vector<dht::Peer>& preds, std::vector<dht::Peer>& succs,
                std::optional<dht::Peer>& responsible) {
  // Senders number each list 1, 2, 3, ... in order (add_links): those are read straight into the
  // lists. Any other numbering is put in order by number (read again below).
  bool ok = true;
  bool in_order = true;
  unsigned last_s = 0;
  unsigned last_p = 0;
  dht::Peer peer;
  char kind = 0;
  unsigned n = 0;
  for (const auto& h : m.headers()) {
    if (!is_link(m, h)) continue;
    if (!read_link(m.value_of(h), peer, kind, n)) {
      ok = false;
      continue;
    }
    if (kind == 'R') {
      responsible = peer;
    } else {
      unsigned& last = kind == 'S' ? last_s : last_p;
      in_order = in_order && n == last + 1;
      last = n;
      (kind == 'S' ? succs : preds).push_back(peer);
    }
  }
  if (in_order) return ok;
  succs.clear();
  preds.clear();
  std::vector<std::pair<unsigned, dht::Peer>> numbered;
  std::vector<std::pair<unsigned, dht::Peer>> numbered_preds;
  for (const auto& h : m.headers()) {
    if (is_link(m, h) && read_link(m.value_of(h), peer, kind, n) && kind != 'R') {
      (kind == 'S' ? numbered : numbered_preds).emplace_back(n, peer);
    }
  }
  auto by_number = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::sort(numbered.begin(), numbered.end(), by_number);
  std::sort(numbered_preds.begin(), numbered_preds.end(), by_number);
  for (auto& [num, p] : numbered) succs.push_back(p);
  for (auto& [num, p] : numbered_preds) preds.push_back(p);
  return ok;
}

/// Walks one msgpack value without building it. False when any container count or string/binary
/// length exceeds what the remaining bytes can hold (each element needs at least one byte), when the
/// input ends early, or when containers nest deeper than `max_depth`. msgpack-c allocates a
/// container's elements before reading them, so this check stands between a peer's body and it.
bool msgpack_bounded(std::string_view in, std::size_t& pos, int depth, int max_depth = 8) {
  auto need = [&](std::size_t n) { return n <= in.size() - pos; };
  auto read_be = [&](std::size_t n, std::uint64_t& v) {
    if (!need(n)) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | static_cast<unsigned char>(in[pos++]);
    return true;
  };
  if (!need(1)) return false;
  auto b = static_cast<unsigned char>(in[pos++]);
  std::uint64_t n = 0;
  auto skip = [&](std::uint64_t len) {
    if (!need(len)) return false;
    pos += static_cast<std::size_t>(len);
    return true;
  };
  auto elements = [&](std::uint64_t count) {
    if (depth >= max_depth || count > in.size() - pos) return false;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (!msgpack_bounded(in, pos, depth + 1, max_depth)) return false;
    }
    return true;
  };
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;  // fixint, nil, bool
  if (b >= 0x80 && b <= 0x8f) return elements(2u * (b & 0x0f));                    // fixmap
  if (b >= 0x90 && b <= 0x9f) return elements(b & 0x0f);                           // fixarray
  if (b >= 0xa0 && b <= 0xbf) return skip(b & 0x1f);                               // fixstr
  switch (b) {
    case 0xc4:
    case 0xd9: return read_be(1, n) && skip(n);  // bin8, str8
    case 0xc5:
    case 0xda: return read_be(2, n) && skip(n);  // bin16, str16
    case 0xc6:
    case 0xdb: return read_be(4, n) && skip(n);      // bin32, str32
    case 0xc7: return read_be(1, n) && skip(n + 1);  // ext8
    case 0xc8: return read_be(2, n) && skip(n + 1);  // ext16
    case 0xc9: return read_be(4, n) && skip(n + 1);  // ext32
    case 0xca:
    case 0xce:
    case 0xd2: return skip(4);  // float32, uint32, int32
    case 0xcb:
    case 0xcf:
    case 0xd3: return skip(8);  // float64, uint64, int64
    case 0xcc:
    case 0xd0: return skip(1);  // uint8, int8
    case 0xcd:
    case 0xd1: return skip(2);                           // uint16, int16
    case 0xd4: return skip(2);                           // fixext1
    case 0xd5: return skip(3);                           // fixext2
    case 0xd6: return skip(5);                           // fixext4
    case 0xd7: return skip(9);                           // fixext8
    case 0xd8: return skip(17);                          // fixext16
    case 0xdc: return read_be(2, n) && elements(n);      // array16
    case 0xdd: return read_be(4, n) && elements(n);      // array32
    case 0xde: return read_be(2, n) && elements(2 * n);  // map16
    case 0xdf: return read_be(4, n) && elements(2 * n);  // map32
    default: return false;                               // 0xc1 is never used
  }
}

}  // namespace

void pack_str(msgpack_packer* pk, std::string_view s) {
  msgpack_pack_str(pk, s.size());
  msgpack_pack_str_body(pk, s.data(), s.size());
}
void pack_bin(msgpack_packer* pk, std::string_view s) {
  msgpack_pack_bin(pk, s.size());
  msgpack_pack_bin_body(pk, s.data(), s.size());
}
bool msgpack_well_formed(std::string_view bytes, int max_depth) {
  std::size_t pos = 0;
  return msgpack_bounded(bytes, pos, 0, max_depth) && pos == bytes.size();
}

std::string peer_uri(const dht::Peer& p) {
  std::string out;
  out.reserve(64);
  append_peer_uri(out, p);
  return out;
}

std::optional<dht::Peer> parse_peer(std::string_view value) {
  auto pv = read_peer_value(value);
  if (!pv) return std::nullopt;
  return pv->peer;
}

namespace {
/// read_peer_value for the form append_peer_uri writes, followed by plain parameters; nullopt for
/// anything else. Every value it reads, the general parser reads the same: the URI's user is hex
/// (unreserved characters), its host a dotted quad (valid labels), its port 1-65535 without
/// leading zeros, and the parameters sip::plain_params.
std::optional<PeerValue> read_canonical(std::string_view v) {
  constexpr std::string_view kOpen = "<sip:";
  constexpr std::size_t kHexEnd = kOpen.size() + 32;
  if (v.size() < kHexEnd + 1 || v.substr(0, kOpen.size()) != kOpen || v[kHexEnd] != '@') return std::nullopt;
  auto id = dht::NodeId::from_hex(v.substr(kOpen.size(), 32));
  if (!id) return std::nullopt;
  std::size_t used = 0;
  auto ip = IpAddress::parse_v4_prefix(v.substr(kHexEnd + 1), used);
  std::size_t i = kHexEnd + 1 + used;
  if (!ip || i >= v.size() || v[i] != ':') return std::nullopt;
  const std::size_t port_at = ++i;
  unsigned port = 0;
  while (i < v.size() && sip::is_digit(v[i]) && i - port_at < 5) port = port * 10 + static_cast<unsigned>(v[i++] - '0');
  if (i == port_at || v[port_at] == '0' || port > 65535) return std::nullopt;
  constexpr std::string_view kAttach = ";attach";
  // Most peers carry no mark: one octet tells (a call to compare the seven was 0.2 % of a
  // simulated message's instructions).
  const bool attach = i < v.size() && v[i] == ';' && v.substr(i, kAttach.size()) == kAttach;
  if (attach) i += kAttach.size();
  if (i >= v.size() || v[i] != '>') return std::nullopt;
  const std::string_view params = v.substr(i + 1);
  if (!sip::plain_params(params)) return std::nullopt;
  return PeerValue{dht::Peer{*id, Endpoint{Transport::Udp, *ip, static_cast<std::uint16_t>(port)}, attach},
                   sip::HeaderParams{params}};
}
}  // namespace

std::optional<PeerValue> read_peer_value(std::string_view value) {
  if (auto fast = read_canonical(value)) return fast;
  auto na = sip::parse_name_address(value);
  auto peer = na ? peer_of(*na) : std::nullopt;
  if (!peer) return std::nullopt;
  return PeerValue{*peer, na->params};
}

std::optional<dht::Peer> peer_of(const sip::NameAddress& na) {
  if (na.uri.scheme != sip::UriScheme::Sip || !na.uri.port) return std::nullopt;
  auto id = dht::NodeId::from_hex(na.uri.user);
  std::string_view host = na.uri.host;
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto ip = IpAddress::parse(host);
  if (!id || !ip) return std::nullopt;
  return dht::Peer{*id, Endpoint{Transport::Udp, *ip, *na.uri.port}, na.uri.has_param("attach")};
}

std::string encode_records(const std::vector<dht::Record>& records) {
  msgpack_sbuffer sbuf;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, records.size());
  for (const auto& r : records) {
    const bool signed_record = !r.signature.empty();
    msgpack_pack_map(&pk, 6 + (r.dkey.empty() ? 0 : 1) + (signed_record ? 3 : 0));
    unsigned char key[16];
    for (int i = 0; i < 8; ++i) {
      key[i] = static_cast<unsigned char>(r.key.hi >> (56 - 8 * i));
      key[8 + i] = static_cast<unsigned char>(r.key.lo >> (56 - 8 * i));
    }
    pack_str(&pk, "k");
    pack_bin(&pk, std::string_view(reinterpret_cast<const char*>(key), 16));
    pack_str(&pk, "n");
    pack_str(&pk, r.name);
    pack_str(&pk, "v");
    pack_bin(&pk, r.value);
    pack_str(&pk, "o");
    pack_str(&pk, r.owner);
    pack_str(&pk, "t");
    msgpack_pack_int64(&pk, r.stored_at_us);
    pack_str(&pk, "l");
    msgpack_pack_uint32(&pk, r.lifetime_s);
    if (!r.dkey.empty()) {
      pack_str(&pk, "d");
      pack_str(&pk, r.dkey);
    }
    if (signed_record) {
      pack_str(&pk, "w");
      msgpack_pack_int64(&pk, r.written_at_us);
      pack_str(&pk, "s");
      pack_bin(&pk, r.signer);
      pack_str(&pk, "g");
      pack_bin(&pk, r.signature);
    }
  }
  std::string out(sbuf.data, sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  return out;
}

std::optional<std::vector<dht::Record>> decode_records(std::string_view bytes, std::size_t max_records) {
  if (!msgpack_well_formed(bytes)) return std::nullopt;
  msgpack_unpacked result;
  msgpack_unpacked_init(&result);
  std::size_t off = 0;
  std::optional<std::vector<dht::Record>> out;
  if (msgpack_unpack_next(&result, bytes.data(), bytes.size(), &off) == MSGPACK_UNPACK_SUCCESS && off == bytes.size() &&
      result.data.type == MSGPACK_OBJECT_ARRAY && result.data.via.array.size <= max_records) {
    std::vector<dht::Record> records;
    bool ok = true;
    const msgpack_object_array& arr = result.data.via.array;
    for (std::uint32_t i = 0; ok && i < arr.size; ++i) {
      const msgpack_object& o = arr.ptr[i];
      if (o.type != MSGPACK_OBJECT_MAP) {
        ok = false;
        break;
      }
      dht::Record rec;
      int seen = 0;
      for (std::uint32_t j = 0; ok && j < o.via.map.size; ++j) {
        const msgpack_object& k = o.via.map.ptr[j].key;
        const msgpack_object& v = o.via.map.ptr[j].val;
        if (k.type != MSGPACK_OBJECT_STR || k.via.str.size != 1) {
          ok = false;
          break;
        }
        switch (k.via.str.ptr[0]) {
          case 'k':
            if (v.type != MSGPACK_OBJECT_BIN || v.via.bin.size != 16) {
              ok = false;
              break;
            }
            for (int b = 0; b < 8; ++b) {
              rec.key.hi = rec.key.hi << 8 | static_cast<unsigned char>(v.via.bin.ptr[b]);
              rec.key.lo = rec.key.lo << 8 | static_cast<unsigned char>(v.via.bin.ptr[8 + b]);
            }
            seen |= 1;
            break;
          case 'n':
            if (v.type != MSGPACK_OBJECT_STR)
              ok = false;
            else
              rec.name.assign(v.via.str.ptr, v.via.str.size);
            seen |= 2;
            break;
          case 'v':
            if (v.type != MSGPACK_OBJECT_BIN)
              ok = false;
            else
              rec.value.assign(v.via.bin.ptr, v.via.bin.size);
            seen |= 4;
            break;
          case 'o':
            if (v.type != MSGPACK_OBJECT_STR)
              ok = false;
            else
              rec.owner.assign(v.via.str.ptr, v.via.str.size);
            seen |= 8;
            break;
          case 't':
            if (v.type == MSGPACK_OBJECT_POSITIVE_INTEGER && v.via.u64 <= INT64_MAX) {
              rec.stored_at_us = static_cast<std::int64_t>(v.via.u64);
            } else if (v.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
              rec.stored_at_us = v.via.i64;
            } else {
              ok = false;
            }
            seen |= 16;
            break;
          case 'l':
            if (v.type != MSGPACK_OBJECT_POSITIVE_INTEGER || v.via.u64 > UINT32_MAX) {
              ok = false;
            } else {
              rec.lifetime_s = static_cast<std::uint32_t>(v.via.u64);
            }
            seen |= 32;
            break;
          case 'd':  // the dictionary key: optional, absent for single-valued data
            if (v.type != MSGPACK_OBJECT_STR)
              ok = false;
            else
              rec.dkey.assign(v.via.str.ptr, v.via.str.size);
            break;
          // A signed record's writer time, signer certificate and signature: optional here, the
          // record guard decides whether a record without them is taken.
          case 'w':
            if (v.type == MSGPACK_OBJECT_POSITIVE_INTEGER && v.via.u64 <= INT64_MAX) {
              rec.written_at_us = static_cast<std::int64_t>(v.via.u64);
            } else {
              ok = false;
            }
            break;
          case 's':
            if (v.type != MSGPACK_OBJECT_BIN)
              ok = false;
            else
              rec.signer.assign(v.via.bin.ptr, v.via.bin.size);
            break;
          case 'g':
            if (v.type != MSGPACK_OBJECT_BIN)
              ok = false;
            else
              rec.signature.assign(v.via.bin.ptr, v.via.bin.size);
            break;
          default: break;  // unknown fields are ignored (room to grow)
        }
      }
      // Every field is required, and the key must be the hash of the name.
      if (ok && (seen != 63 || dht::NodeId::hash(rec.name) != rec.key)) ok = false;
      if (ok) records.push_back(std::move(rec));
    }
    if (ok) out = std::move(records);
  }
  msgpack_unpacked_destroy(&result);
  return out;
}

sip::Message encode_request(const dht::Request& r, const RequestFraming& f) {
  // Every value is written straight into the message's buffer: this runs for every overlay request.
  auto overlay_uri = [&](std::string& out) {
    out.append("sip:");
    r.target.append_hex(out);
    out.append(1, '@').append(f.overlay);
  };
  sip::Message m = sip::Message::request_writing("REGISTER", overlay_uri);
  m.add_header_writing(HeaderId::Via, [&](std::string& out) {
    out.append("SIP/2.0/").append(transport_name(f.transport)).append(1, ' ');
    r.sender.addr.append_host_port(out);
    out.append(";branch=").append(f.branch).append(";rport");
  });
  m.add_header(HeaderId::MaxForwards, "70");
  m.add_header_writing(HeaderId::From, [&](std::string& out) {
    out.append("<sip:");
    r.sender.id.append_hex(out);
    out.append(1, '@').append(f.overlay).append(">;tag=").append(f.from_tag);
  });
  // The Request-URI again, written anew (the writer must not read the message's own text).
  m.add_header_writing(HeaderId::To, [&](std::string& out) {
    out.append(1, '<');
    overlay_uri(out);
    out.append(1, '>');
  });
  m.add_header(HeaderId::CallId, f.call_id);
  m.add_header(HeaderId::CSeq, "1 REGISTER");
  m.add_header_writing(kPeerId, [&](std::string& out) { append_peer_header(out, r.sender, f.overlay); });
  m.add_header(kOp, r.op == dht::Op::Route ? dht::route_op_name(r.route_op) : dht::op_name(r.op));
  if (r.op == dht::Op::Route) {
    char num[12];
    m.add_header(
        kHops, std::string_view(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, r.hops).ptr - num)));
    m.add_header(kRouting, r.iterative ? "iterative" : "recursive");
    if (r.final_hop) m.add_header(kFinal, "yes");
    if (!r.exclude.empty()) {
      m.add_header_writing(kExclude, [&](std::string& out) {
        for (std::size_t i = 0; i < r.exclude.size(); ++i) {
          if (i > 0) out.append(", ");
          r.exclude[i].append_hex(out);
        }
      });
    }
    if (r.route_op == dht::RouteOp::Find) m.add_header(kKind, r.kind);
  }
  if (r.origin) m.add_header_writing(kOrigin, [&](std::string& out) { append_peer_uri(out, *r.origin); });
  add_links(m, r.predecessors, r.successors);
  if (!r.records.empty()) m.set_body(kRecordsType, encode_records(r.records));
  if (!r.payload.empty()) m.set_body(r.op == dht::Op::Turn ? kTurnType : nat::kIceContentType, r.payload);
  return m;
}

Result<dht::Request, sip::Rejection> decode_request(const sip::Message& m, std::string_view overlay) {
  auto bad = [](std::string reason) { return unexpected(sip::Rejection{400, std::move(reason), HeaderId::Other, {}}); };
  dht::Request r;
  const DhtFields fields = dht_fields(m);
  auto peer_value = fields.peer_id;
  if (!peer_value) return bad("Missing DHT-PeerID");
  auto sender = read_peer_value(*peer_value);
  if (!sender) return bad("Malformed DHT-PeerID");
  auto peer_overlay = sender->params.get("overlay");
  if (!peer_overlay || *peer_overlay != overlay) {
    return unexpected(sip::Rejection{404, "Unknown Overlay", HeaderId::Other, {}});
  }
  r.sender = sender->peer;
  auto ruri = sip::parse_uri(m.request_uri());
  auto target = ruri ? dht::NodeId::from_hex(ruri->user) : std::nullopt;
  if (!target) return bad("Request-URI Is Not An Overlay Identifier");
  r.target = *target;
  std::string_view op = fields.op.value_or("");
  if (auto route = dht::route_op_from_name(op)) {
    r.op = dht::Op::Route;
    r.route_op = *route;
    auto hops = sip::parse_decimal(fields.hops.value_or(""), 1000);
    if (!hops) return bad("Malformed DHT-Hops");
    r.hops = static_cast<std::uint32_t>(*hops);
    std::string_view routing = fields.routing.value_or("recursive");
    if (routing != "recursive" && routing != "iterative") return bad("Malformed DHT-Routing");
    r.iterative = routing == "iterative";
    r.final_hop = fields.final_hop.has_value();
    if (auto ex = fields.exclude) {
      std::string_view rest = *ex;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        auto id = dht::NodeId::from_hex(item);
        if (!id || r.exclude.size() >= dht::kMaxExcluded) return bad("Malformed DHT-Exclude");
        r.exclude.push_back(*id);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    }
    if (r.route_op == dht::RouteOp::Find) {
      if (!fields.kind || fields.kind->empty() || fields.kind->size() > 64) return bad("Find Without DHT-Kind");
      r.kind = std::string(*fields.kind);
    }
  } else if (auto o = dht::op_from_name(op); o && *o != dht::Op::Route) {
    r.op = *o;
  } else {
    return bad("Unknown DHT-Op");
  }
  std::optional<dht::Peer> responsible;
  if (!read_links(m, r.predecessors, r.successors, responsible)) return bad("Malformed DHT-Link");
  const bool attach = r.op == dht::Op::Route && r.route_op == dht::RouteOp::Attach;
  if (attach) {
    // An Attach carries its sender's ICE description, and nothing else (RFC 6940 §6.5.1.1).
    auto ct = m.header(HeaderId::ContentType);
    if (m.body().empty()) return bad("Attach Without An ICE Description");
    auto origin = m.extension_header(kOrigin);
    r.origin = origin ? parse_peer(*origin) : std::nullopt;
    if (!r.origin) return bad(origin ? "Malformed DHT-Origin" : "Attach Without DHT-Origin");
    if (!ct || !sip::iequals(*ct, nat::kIceContentType)) {
      return unexpected(
          sip::Rejection{415, "Unsupported Media Type", HeaderId::Accept, std::string(nat::kIceContentType)});
    }
    r.payload = std::string(m.body());
  } else if (r.op == dht::Op::Turn) {
    // A request for TURN credentials carries the asker's sealing key, and nothing else.
    auto ct = m.header(HeaderId::ContentType);
    if (m.body().empty()) return bad("TURN Request Without A Body");
    if (!ct || !sip::iequals(*ct, kTurnType)) {
      return unexpected(sip::Rejection{415, "Unsupported Media Type", HeaderId::Accept, std::string(kTurnType)});
    }
    r.payload = std::string(m.body());
  } else if (!m.body().empty()) {
    auto ct = m.header(HeaderId::ContentType);
    if (!ct || !sip::iequals(*ct, kRecordsType)) {
      return unexpected(sip::Rejection{415, "Unsupported Media Type", HeaderId::Accept, std::string(kRecordsType)});
    }
    auto records = decode_records(m.body());
    if (!records) return bad("Malformed Records");
    r.records = std::move(*records);
  }
  return r;
}

sip::Message encode_response(const sip::Message& request, const dht::Response& r, std::string_view overlay,
                             std::string_view to_tag) {
  sip::Message m = sip::make_response(request, dht::code(r.status), r.reason, to_tag);
  m.add_header_writing(kPeerId, [&](std::string& out) { append_peer_header(out, r.responder, overlay); });
  if (dht::code(r.status) < 300 || r.status == dht::Status::Redirect) {
    char num[12];
    m.add_header(
        kHops, std::string_view(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, r.hops).ptr - num)));
  }
  if (r.responsible) {
    m.add_header_writing(kLink, [&](std::string& out) {
      append_peer_uri(out, *r.responsible);
      out.append(";link=R");
    });
  }
  add_links(m, r.predecessors, r.successors);
  if (r.redirect) {
    m.add_header_writing(HeaderId::Contact, [&](std::string& out) { append_peer_uri(out, *r.redirect); });
    if (r.redirect_final) m.add_header(kFinal, "yes");
  }
  if (!r.records.empty()) m.set_body(kRecordsType, encode_records(r.records));
  if (!r.payload.empty()) {
    const auto op = request.extension_header(kOp);
    m.set_body(op && sip::iequals(*op, dht::op_name(dht::Op::Turn)) ? kTurnType : nat::kIceContentType, r.payload);
  }
  if (r.retry_after_s > 0) m.add_header(HeaderId::RetryAfter, std::to_string(r.retry_after_s));
  return m;
}

Result<dht::Response, std::string> decode_response(const sip::Message& m) {
  dht::Response r;
  r.status = dht::status_of(m.status());
  r.reason = std::string(m.reason());
  const DhtFields fields = dht_fields(m);
  if (auto p = fields.peer_id) {
    auto peer = parse_peer(*p);
    if (!peer) return unexpected(std::string("Malformed DHT-PeerID"));
    r.responder = *peer;
  }
  if (auto h = fields.hops) {
    auto hops = sip::parse_decimal(*h, 1000);
    if (!hops) return unexpected(std::string("Malformed DHT-Hops"));
    r.hops = static_cast<std::uint32_t>(*hops);
  }
  if (!read_links(m, r.predecessors, r.successors, r.responsible)) {
    return unexpected(std::string("Malformed DHT-Link"));
  }
  if (r.status == dht::Status::Redirect) {
    auto contact = m.header(HeaderId::Contact);
    auto next = contact ? parse_peer(*contact) : std::nullopt;
    if (!next) return unexpected(std::string("302 Without A Peer Contact"));
    r.redirect = next;
    r.redirect_final = fields.final_hop.has_value();
  }
  if (auto ra = m.header(HeaderId::RetryAfter)) {
    // RFC 3261 §20.33: delta-seconds, perhaps with a comment or parameters after it.
    const auto digits = ra->substr(0, ra->find_first_not_of("0123456789"));
    if (auto s = sip::parse_decimal(digits, 86400)) r.retry_after_s = static_cast<std::uint32_t>(*s);
  }
  if (!m.body().empty()) {
    auto ct = m.header(HeaderId::ContentType);
    if (ct && (sip::iequals(*ct, nat::kIceContentType) || sip::iequals(*ct, kTurnType))) {
      r.payload = std::string(m.body());
      return r;
    }
    auto records = decode_records(m.body());
    if (!records) return unexpected(std::string("Malformed Records"));
    r.records = std::move(*records);
  }
  return r;
}

// ---- client flows -------------------------------------------------------------------------------

namespace {
constexpr std::string_view kFlowTimer = "Flow-Timer";
constexpr std::string_view kPath = "Path";

std::string_view unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
  return v;
}

/// A +sip.instance value is a URN (RFC 5626 §4.1): "urn:" then letters, digits and URN punctuation.
bool plausible_instance(std::string_view v) {
  if (v.size() < 5 || v.size() > 128 || !sip::iequals(v.substr(0, 4), "urn:")) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view(":-._~%+=@!$*,;/?").find(c) != std::string_view::npos;
  });
}

std::string_view number_text(char (&buf)[12], std::uint32_t v) {
  return std::string_view(buf, static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
}
}  // namespace

sip::Message encode_flow_request(const FlowRegistration& fr, const RequestFraming& f) {
  auto overlay_uri = [&](std::string& out) { out.append("sip:").append(f.overlay); };
  sip::Message m = sip::Message::request_writing("REGISTER", overlay_uri);
  m.add_header_writing(HeaderId::Via, [&](std::string& out) {
    out.append("SIP/2.0/").append(transport_name(f.transport)).append(1, ' ');
    fr.client.addr.append_host_port(out);
    out.append(";branch=").append(f.branch).append(";rport");
  });
  m.add_header(HeaderId::MaxForwards, "70");
  m.add_header_writing(HeaderId::From, [&](std::string& out) {
    out.append("<sip:");
    fr.client.id.append_hex(out);
    out.append(1, '@').append(f.overlay).append(">;tag=").append(f.from_tag);
  });
  m.add_header_writing(HeaderId::To, [&](std::string& out) {
    out.append("<sip:");
    fr.client.id.append_hex(out);
    out.append(1, '@').append(f.overlay).append(">");
  });
  m.add_header(HeaderId::CallId, f.call_id);
  m.add_header(HeaderId::CSeq, "1 REGISTER");
  m.add_header_writing(kPeerId, [&](std::string& out) {
    append_peer_header(out, fr.client, f.overlay);
    out.append(";client");
  });
  m.add_header(kOp, kFlowOp);
  m.add_header_writing(HeaderId::Contact, [&](std::string& out) {
    out.append("<sip:");
    fr.client.id.append_hex(out);
    out.append(1, '@');
    fr.client.addr.append_host_port(out);
    out.append(";ob>;+sip.instance=\"<").append(fr.instance).append(">\";reg-id=");
    char num[12];
    out.append(number_text(num, fr.reg_id)).append(";expires=").append(number_text(num, fr.expires_s));
  });
  m.add_header(HeaderId::Supported, "outbound, path");
  return m;
}

Result<FlowRegistration, sip::Rejection> decode_flow_request(const sip::Message& m, std::string_view overlay) {
  auto bad = [](std::string reason) { return unexpected(sip::Rejection{400, std::move(reason), HeaderId::Other, {}}); };
  FlowRegistration fr;
  const DhtFields fields = dht_fields(m);
  if (!fields.peer_id) return bad("Missing DHT-PeerID");
  auto sender = read_peer_value(*fields.peer_id);
  if (!sender) return bad("Malformed DHT-PeerID");
  auto o = sender->params.get("overlay");
  if (!o || *o != overlay) return unexpected(sip::Rejection{404, "Unknown Overlay", HeaderId::Other, {}});
  fr.client = sender->peer;
  auto contact = m.header(HeaderId::Contact);
  if (!contact) return bad("Flow Registration Without Contact");
  auto na = sip::parse_name_address(*contact);
  if (!na) return bad("Malformed Contact");
  auto instance = na->params.get("+sip.instance");
  auto reg_id = na->params.get("reg-id");
  auto expires = na->params.get("expires");
  if (!instance || !plausible_instance(unquote(*instance))) return bad("Contact Without A +sip.instance URN");
  auto reg = reg_id ? sip::parse_decimal(*reg_id, 1000000) : std::nullopt;
  if (!reg || *reg == 0) return bad("Contact Without A reg-id");
  auto exp = expires ? sip::parse_decimal(*expires, 86400 * 7) : std::nullopt;
  if (!exp) return bad("Contact Without expires");
  fr.instance = std::string(unquote(*instance));
  fr.reg_id = static_cast<std::uint32_t>(*reg);
  fr.expires_s = static_cast<std::uint32_t>(*exp);
  return fr;
}

sip::Message encode_flow_response(const sip::Message& request, const FlowGrant& g, std::string_view overlay,
                                  std::string_view to_tag) {
  sip::Message m = sip::make_response(request, 200, "OK", to_tag);
  m.add_header_writing(kPeerId, [&](std::string& out) { append_peer_header(out, g.relay, overlay); });
  if (auto contact = request.header(HeaderId::Contact)) {
    // The binding as the relay holds it, with the lifetime granted (RFC 3261 §10.3 step 8).
    std::string c(*contact);
    if (auto na = sip::parse_name_address(*contact)) {
      c = std::string(contact->substr(0, static_cast<std::size_t>(na->params.raw.data() - contact->data())));
      na->params.append_without(c, "expires");
      char num[12];
      c.append(";expires=").append(number_text(num, g.expires_s));
    }
    m.add_header(HeaderId::Contact, c);
  }
  m.add_header(kPath, g.path);
  add_links(m, {}, g.alternates);
  char num[12];
  m.add_header(kFlowTimer, number_text(num, g.flow_timer_s));
  m.add_header(HeaderId::Require, "outbound");
  return m;
}

Result<FlowGrant, std::string> decode_flow_response(const sip::Message& m) {
  if (m.status() < 200 || m.status() >= 300) return unexpected(std::string(m.reason()));
  FlowGrant g;
  const DhtFields fields = dht_fields(m);
  if (!fields.peer_id) return unexpected(std::string("Missing DHT-PeerID"));
  auto relay = parse_peer(*fields.peer_id);
  if (!relay) return unexpected(std::string("Malformed DHT-PeerID"));
  g.relay = *relay;
  auto path = m.extension_header(kPath);
  if (!path || !sip::parse_name_address(*path)) return unexpected(std::string("Missing Path"));
  g.path = std::string(*path);
  std::vector<dht::Peer> preds;
  std::optional<dht::Peer> responsible;
  if (!read_links(m, preds, g.alternates, responsible)) return unexpected(std::string("Malformed DHT-Link"));
  if (auto ft = m.extension_header(kFlowTimer)) {
    auto v = sip::parse_decimal(*ft, 86400);
    if (!v) return unexpected(std::string("Malformed Flow-Timer"));
    g.flow_timer_s = static_cast<std::uint32_t>(*v);
  }
  if (auto contact = m.header(HeaderId::Contact)) {
    if (auto na = sip::parse_name_address(*contact)) {
      if (auto e = na->params.get("expires")) {
        if (auto v = sip::parse_decimal(*e, 86400 * 7)) g.expires_s = static_cast<std::uint32_t>(*v);
      }
    }
  }
  return g;
}

}  // namespace p2psip::overlay
