// libFuzzer target: the transaction layer's receive path. The input is a script of operations:
// deliver a datagram (from one of a few peers, over UDP or TCP), advance virtual time, answer a
// pending server transaction, or start a client transaction. At the end every pending server
// transaction is answered and time runs on: the layer must then hold no transaction at all.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "node/sip/transaction.hpp"
#include "node/sip/validate.hpp"

using namespace p2psip;
using namespace p2psip::sip;

namespace {

class NullEnvironment : public Environment {
 public:
  bool send(const Endpoint&, std::string_view bytes) override {
    sent_bytes += bytes.size();
    return true;
  }
  std::uint64_t random() override { return state = state * 6364136223846793005ull + 1442695040888963407ull; }
  std::uint64_t secure_random() override { return random(); }
  std::uint64_t state = 1;
  std::size_t sent_bytes = 0;
};

class PendingUser : public TransactionUser {
 public:
  void on_request(TransactionId id, const Message& request, const Endpoint&, Instant) override {
    pending.push_back(id);
    (void)request;
  }
  void on_ack(TransactionId, const Message&, const Endpoint&, Instant) override {}
  void on_response(TransactionId, const Message&, Instant) override {}
  void on_timeout(TransactionId, Instant) override {}
  void on_transport_error(TransactionId, Instant) override {}
  std::vector<TransactionId> pending;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  NullEnvironment env;
  PendingUser tu;
  TransactionLayer layer(env, tu);
  Instant now{};
  const Endpoint peers[3] = {
      {Transport::Udp, *IpAddress::parse("192.0.2.1"), 5060},
      {Transport::Tcp, *IpAddress::parse("192.0.2.2"), 40000},
      {Transport::Udp, *IpAddress::parse("2001:db8::1"), 5070},
  };
  std::size_t i = 0;
  auto byte = [&]() -> std::uint8_t { return i < size ? data[i++] : 0; };
  while (i < size) {
    std::uint8_t op = byte();
    switch (op % 4) {
      case 0: {  // a datagram of the next N bytes
        std::size_t n = (static_cast<std::size_t>(byte()) << 8 | byte()) % 2048;
        n = std::min(n, size - i);
        layer.receive_datagram(std::string_view(reinterpret_cast<const char*>(data + i), n), peers[op / 4 % 3], now);
        i += n;
        break;
      }
      case 1:  // time passes
        now += millis(byte() * 37);
        layer.advance(now);
        break;
      case 2: {  // the TU answers a pending request
        if (tu.pending.empty()) break;
        std::size_t k = byte() % tu.pending.size();
        TransactionId id = tu.pending[k];
        static const int codes[] = {100, 180, 200, 408, 486, 503};
        const Message* req = layer.request_of(id);
        if (req) layer.respond(id, make_response(*req, codes[byte() % 6], {}, "t"), now);
        break;
      }
      case 3: {  // a client transaction
        Message r = Message::request(byte() % 2 ? "INVITE" : "OPTIONS", "sip:x@192.0.2.9");
        r.add_header(HeaderId::Via, "SIP/2.0/UDP 192.0.2.100;branch=" + layer.make_branch());
        r.add_header(HeaderId::CSeq, std::string("1 ") + std::string(r.method()));
        (void)layer.send_request(r, peers[byte() % 3], now);
        break;
      }
    }
  }
  for (TransactionId id : tu.pending) {
    if (const Message* req = layer.request_of(id)) layer.respond(id, make_response(*req, 500, {}, "end"), now);
  }
  for (int step = 0; step < 20; ++step) {
    now += seconds(60);
    layer.advance(now);
  }
  if (layer.size() != 0) std::abort();  // every transaction ends by itself
  return 0;
}
