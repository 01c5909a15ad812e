#include "node/proxy/registration.hpp"

#include <msgpack.h>

#include "node/overlay/codec.hpp"

namespace p2psip::proxy {

std::string encode_registration(const RegistrationEntry& e) {
  msgpack_sbuffer sbuf;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4);
  overlay::pack_str(&pk, "node");
  overlay::pack_str(&pk, e.node.id.hex());
  overlay::pack_str(&pk, "addr");
  overlay::pack_str(&pk, e.node.addr.host_port());
  overlay::pack_str(&pk, "transport");
  overlay::pack_str(&pk, transport_name(e.node.addr.transport));
  overlay::pack_str(&pk, "devices");
  msgpack_pack_uint32(&pk, e.devices);
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
    }
    auto t = transport ? transport_from_name(*transport) : std::nullopt;
    auto ep = addr && t ? parse_host_port(*addr, *t) : std::nullopt;
    if (id && ep && devices) out = RegistrationEntry{dht::Peer{*id, *ep}, *devices};
  }
  msgpack_unpacked_destroy(&result);
  return out;
}

}  // namespace p2psip::proxy
