// libFuzzer target: ICE descriptions (nat/ice.hpp), the body of every Attach a node takes from the
// overlay. A body that parses must be written back and read to the same value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "nat/ice.hpp"

using namespace p2psip::nat;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)parse_candidate(body);
  auto d = parse_ice(body);
  if (!d) return 0;
  auto again = parse_ice(encode_ice(d.value()), IceLimits{64, 1 << 20});
  if (!again || !(again.value() == d.value())) std::abort();
  return 0;
}
