#include "node/proxy/registration.hpp"

#include <msgpack.h>

#include "node/overlay/codec.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/uri.hpp"

namespace p2psip::proxy {

std::optional<Endpoint> via_endpoint(std::string_view via) {
  auto na = sip::parse_name_address(via);
  if (!na || !na->bracketed || !na->uri.has_param("lr")) return std::nullopt;
  return sip::uri_endpoint(na->uri);
}

std::string encode_registration(const RegistrationEntry& e) {
  msgpack_sbuffer sbuf;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  // Without relays the entry is the four fields it always had (an entry of a reachable node is
  // byte for byte what nodes before relays wrote).
  msgpack_pack_map(&pk, e.via.empty() ? 4 : 5);
  overlay::pack_str(&pk, "node");
  overlay::pack_str(&pk, e.node.id.hex());
  overlay::pack_str(&pk, "addr");
  overlay::pack_str(&pk, e.node.addr.host_port());
  overlay::pack_str(&pk, "transport");
  overlay::pack_str(&pk, transport_name(e.node.addr.transport));
  overlay::pack_str(&pk, "devices");
  msgpack_pack_uint32(&pk, e.devices);
  if (!e.via.empty()) {
    overlay::pack_str(&pk, "via");
    msgpack_pack_array(&pk, e.via.size());
    for (const auto& v : e.via) overlay::pack_str(&pk, v);
  }
  std::string out(sbuf.data, sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  return out;
}

std::optional<RegistrationEntry> decode_registration(std::string_view bytes) {
  if (!overlay::msgpack_well_formed(bytes, 2)) return std::nullopt;
  msgpack_unpacked result;
  msgpack_unpacked_init(&result);
  std::size_t off = 0;
  std::optional<RegistrationEntry> out;
  if (msgpack_unpack_next(&result, bytes.data(), bytes.size(), &off) == MSGPACK_UNPACK_SUCCESS &&
      result.data.type == MSGPACK_OBJECT_MAP) {
    std::optional<dht::NodeId> id;
    std::optional<std::string> addr, transport;
    std::optional<std::uint32_t> devices;
    std::vector<std::string> via;
    bool via_ok = true;
    const auto& map = result.data.via.map;
    for (std::uint32_t i = 0; i < map.size; ++i) {
      const msgpack_object& k = map.ptr[i].key;
      const msgpack_object& v = map.ptr[i].val;
      if (k.type != MSGPACK_OBJECT_STR) continue;
      std::string_view name(k.via.str.ptr, k.via.str.size);
      std::optional<std::string_view> text;
      if (v.type == MSGPACK_OBJECT_STR) text = std::string_view(v.via.str.ptr, v.via.str.size);
      if (name == "node" && text) id = dht::NodeId::from_hex(*text);
      if (name == "addr" && text) addr = std::string(*text);
      if (name == "transport" && text) transport = std::string(*text);
      if (name == "devices" && v.type == MSGPACK_OBJECT_POSITIVE_INTEGER && v.via.u64 <= UINT32_MAX) {
        devices = static_cast<std::uint32_t>(v.via.u64);
      }
      if (name == "via") {
        via_ok = v.type == MSGPACK_OBJECT_ARRAY && v.via.array.size <= kMaxVia;
        for (std::uint32_t j = 0; via_ok && j < v.via.array.size; ++j) {
          const msgpack_object& u = v.via.array.ptr[j];
          via_ok = u.type == MSGPACK_OBJECT_STR;
          if (!via_ok) break;
          std::string uri(u.via.str.ptr, u.via.str.size);
          via_ok = via_endpoint(uri).has_value();
          via.push_back(std::move(uri));
        }
      }
    }
    auto t = transport ? transport_from_name(*transport) : std::nullopt;
    auto ep = addr && t ? parse_host_port(*addr, *t) : std::nullopt;
    if (id && ep && devices && via_ok) out = RegistrationEntry{dht::Peer{*id, *ep}, *devices, std::move(via)};
  }
  msgpack_unpacked_destroy(&result);
  return out;
}

}  // namespace p2psip::proxy
