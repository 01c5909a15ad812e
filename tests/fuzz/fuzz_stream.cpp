// libFuzzer target: stream framing fed in chunks whose sizes the input chooses.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/sip/stream_framer.hpp"

using namespace p2psip::sip;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t chunk = 1 + data[0] % 64;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  Limits limits;
  limits.max_message_bytes = 4096;
  limits.max_body_bytes = 2048;
  StreamFramer framer(limits);
  std::size_t delivered = 0;
  for (std::size_t i = 0; i < bytes.size(); i += chunk) {
    framer.feed(bytes.substr(i, chunk));
    for (;;) {
      auto item = framer.next();
      if (item.kind == StreamFramer::Kind::NeedMore) break;
      if (item.kind == StreamFramer::Kind::Message) {
        if (!item.message) std::abort();
        delivered += item.message->serialize().size();
      }
    }
    if (framer.failed()) break;
    // Bounded memory: never more than one message's worth (plus one chunk) held.
    if (framer.buffered() > limits.max_message_bytes + 64 + chunk) std::abort();
  }
  (void)delivered;
  return 0;
}
