// libFuzzer target: the overlay's entry point. The input is a datagram for an OverlayNode (which
// decodes overlay requests and responses, msgpack records included), and also raw msgpack for the
// record decoder. Time advances between inputs' halves so timers run too.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "node/overlay/codec.hpp"
#include "node/overlay/overlay_node.hpp"

using namespace p2psip;

namespace {
class QuietEnvironment : public Environment {
 public:
  bool send(const Endpoint&, std::string_view) override { return true; }
  std::uint64_t random() override { return state = state * 6364136223846793005ull + 1442695040888963407ull; }
  std::uint64_t secure_random() override { return random(); }
  std::uint64_t state = 7;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)overlay::decode_records(bytes);
  auto parsed = sip::parse_datagram(bytes);
  if (parsed) {
    if (parsed->is_request()) {
      (void)overlay::decode_request(*parsed, "example.p2psip");
    } else {
      (void)overlay::decode_response(*parsed);
    }
  }
  QuietEnvironment env;
  overlay::OverlayConfig cfg;
  cfg.overlay = "example.p2psip";
  cfg.chord.stabilize_interval = seconds(1);
  overlay::OverlayNode node(dht::Peer{dht::NodeId{0x895a80d1a1f66438ull, 0xdae8b8276f3bd5e5ull},
                                      *parse_host_port("127.0.0.1:5071", Transport::Udp)},
                            cfg, env);
  node.start({*parse_host_port("127.0.0.1:5072", Transport::Udp)}, Instant{});
  Endpoint from = *parse_host_port("127.0.0.1:5072", Transport::Udp);
  node.receive_datagram(bytes, from, Instant(millis(10)));
  node.advance(Instant(seconds(2)));
  node.receive_datagram(bytes, from, Instant(seconds(3)));
  node.advance(Instant(seconds(120)));
  return 0;
}
