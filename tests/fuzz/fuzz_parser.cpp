// libFuzzer target: the datagram parser, the validator and the typed header parsers. A message that
// parses must serialize to bytes that parse again to the same serialization.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

using namespace p2psip::sip;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto m = parse_datagram(bytes);
  if (!m) return 0;
  (void)check_message(*m);
  if (m->is_request()) {
    (void)parse_uri(m->request_uri());
    (void)check_request_capabilities(*m, Capabilities{});
    (void)make_response(*m, 200, {}, "fuzz");
  }
  std::vector<Via> vias;
  std::vector<NameAddress> addresses;
  std::vector<std::string_view> tokens;
  std::vector<MediaType> media;
  for (const auto& h : m->headers()) {
    std::string_view v = m->value_of(h);
    (void)parse_via_list(v, vias);
    (void)parse_name_address(v);
    (void)parse_name_address_list(v, addresses, true);
    (void)parse_cseq(v);
    (void)parse_token_list(v, tokens);
    (void)parse_media_range_list(v, media);
    for (const auto& via : vias) (void)via.params.without("rport");
    vias.clear();
    addresses.clear();
    tokens.clear();
    media.clear();
  }
  std::string once = m->serialize();
  auto again = parse_datagram(once);
  if (!again) std::abort();  // a message we accepted must survive its own serialization
  if (again->serialize() != once) std::abort();
  return 0;
}
