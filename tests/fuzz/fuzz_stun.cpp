// libFuzzer target: the STUN decoder (nat/stun.hpp), where a node's UDP ports take STUN. A message
// that decodes is read every way the node reads one, and the answer it would get must decode too.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "nat/stun.hpp"

using namespace p2psip;
using namespace p2psip::nat;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)looks_like_stun(bytes);
  if (is_classic_binding_request(bytes)) {
    // The classic answer: the request's 128-bit transaction ID, and the sender in MAPPED-ADDRESS.
    const Endpoint from{Transport::Udp, *IpAddress::parse("2001:db8::7"), 5070};
    const std::string answer = answer_classic_binding(bytes, from);
    if (answer.size() != 44 || answer.compare(4, 16, bytes.substr(4, 16)) != 0) std::abort();
  }
  auto m = decode_stun(bytes);
  if (!m) return 0;
  (void)m->mapped_address();
  (void)m->address(attr::OtherAddress, false);
  (void)m->error_code();
  (void)m->unknown_required({attr::Username, attr::MessageIntegrity});
  (void)check_integrity(*m, "key");
  (void)check_integrity_sha256(*m, "key");
  if (m->cls == StunClass::Request) {
    const Endpoint from{Transport::Udp, *IpAddress::parse("198.51.100.7"), 5070};
    const std::string answer = answer_binding(*m, from, "fuzz");
    auto a = decode_stun(answer);
    if (!a || a->id != m->id) std::abort();
    if (a->cls == StunClass::Success && a->mapped_address() != from) std::abort();
  }
  return 0;
}
