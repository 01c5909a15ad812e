// Records the golden captures (capture.hpp): a four-node overlay on virtual time whose every message
// is written down. Run once from a known-good build; tests/golden/*.capture are its output, and
// golden_replay_test.cpp checks every later build against them.
//
//   golden_record OUT_DIR      writes OUT_DIR/udp_recursive.capture and OUT_DIR/tcp_iterative.capture
//
// Each node's timing depends on what it receives alone (OverlayNet::random_quantum: no stabilization
// jitter), so that a replay that feeds one node what it received here sees it send the same.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "capture.hpp"
#include "node/echo/echo_element.hpp"
#include "node/proxy/ua_side.hpp"
#include "tests/unit/overlay_harness.hpp"

namespace p2psip::golden {
namespace {

const char* const kIds[] = {"10000000000000000000000000000001", "50000000000000000000000000000002",
                            "90000000000000000000000000000003", "d0000000000000000000000000000004"};

Endpoint ua_addr(std::size_t node) {
  return Endpoint{Transport::Udp, *IpAddress::parse("127.0.3." + std::to_string(node + 1)), 5060};
}

/// A softphone whose every message the test writes; keeps what it receives.
struct Phone {
  Endpoint addr;
  test::OverlayNet::Host* host = nullptr;
  std::vector<sip::Message> received;
};

struct Recorder {
  test::OverlayNet net;
  std::unique_ptr<Writer> out;
  std::vector<std::unique_ptr<proxy::UaSide>> uas;
  std::vector<std::unique_ptr<echo::EchoElement>> echoes;
  std::vector<std::unique_ptr<Phone>> phones;

  Recorder(const std::string& path, Transport links, bool iterative) {
    net.config.overlay = "golden.p2psip";
    net.config.link_transport = links;
    net.config.chord.iterative = iterative;
    net.config.chord.stabilize_interval = seconds(30);
    net.random_quantum = static_cast<std::uint64_t>(net.config.chord.stabilize_interval.count() / 10);
    out = std::make_unique<Writer>(path);
    out->param("overlay", net.config.overlay);
    out->param("link_transport", std::string(transport_name(links)));
    out->param("iterative", iterative ? "1" : "0");
    out->param("stabilize_ms", std::to_string(to_millis(net.config.chord.stabilize_interval)));
    out->param("random_quantum", std::to_string(net.random_quantum));
    out->param("t1_ms", std::to_string(to_millis(net.config.timers.t1)));
    out->param("latency_us", std::to_string(net.latency.count()));
    net.on_send = [this](Instant at, const Endpoint& from, const Endpoint& to, std::string_view bytes) {
      out->message(at.time_since_epoch().count(), from, to, bytes);
    };
  }
  [[nodiscard]] std::int64_t t() const { return net.now.time_since_epoch().count(); }

  void add_node(std::size_t i, bool with_ua) {
    std::optional<Endpoint> ua;
    if (with_ua) ua = ua_addr(i);
    out->node(i, kIds[i], test::OverlayNet::addr_of(i), ua);
    out->action(t(), i, std::string("start ") + (i == 0 ? "-" : test::OverlayNet::addr_of(0).to_string()));
    net.add(*dht::NodeId::from_hex(kIds[i]), i == 0 ? std::nullopt : std::optional<std::size_t>(0));
    if (!with_ua) return;
    if (uas.size() <= i) uas.resize(i + 1);
    proxy::UaSideConfig c;
    c.registrar.domain = net.config.overlay;
    c.ua_address = *ua;
    uas[i] = std::make_unique<proxy::UaSide>(net.host_at(*ua), *net.nodes[i], c, nullptr);
    proxy::UaSide* side = uas[i].get();
    net.members.push_back(
        test::OverlayNet::Member{*ua,
                                 [this, side](std::string_view b, const Endpoint& from, Instant now) {
                                   if (from.transport == Transport::Udp) {
                                     side->receive_datagram(b, from, now);
                                   } else if (auto m = sip::parse_message(b, net.config.limits, true, nullptr)) {
                                     side->receive(*m, from, now);
                                   }
                                 },
                                 [side] { return side->next_wakeup(); }, [side](Instant now) { side->advance(now); }});
  }

  echo::EchoElement& callee(const Endpoint& addr) {
    echo::EchoConfig ec;
    ec.contact_host = addr.ip.to_string();
    ec.contact_port = addr.port;
    echoes.push_back(std::make_unique<echo::EchoElement>(net.host_at(addr), ec));
    echo::EchoElement* e = echoes.back().get();
    net.members.push_back(test::OverlayNet::Member{
        addr, [e](std::string_view b, const Endpoint& from, Instant now) { e->receive_datagram(b, from, now); },
        [e] { return e->next_wakeup(); }, [e](Instant now) { e->advance(now); }});
    return *e;
  }

  Phone& phone(const Endpoint& addr) {
    phones.push_back(std::make_unique<Phone>());
    Phone& p = *phones.back();
    p.addr = addr;
    p.host = &net.host_at(addr);
    net.members.push_back(test::OverlayNet::Member{addr, [&p](std::string_view b, const Endpoint&, Instant) {
                                                     if (auto m = sip::parse_datagram(b)) p.received.push_back(*m);
                                                   }});
    return p;
  }

  void route(std::size_t node, dht::RouteOp op, const std::string& key, const std::string& dkey,
             const std::string& value, std::uint32_t lifetime) {
    std::optional<dht::Record> rec;
    if (op == dht::RouteOp::Store) {
      rec = dht::Record{};
      rec->key = dht::NodeId::hash(key);
      rec->name = key;
      rec->dkey = dkey;
      rec->value = value;
      rec->owner = kIds[node];
      rec->lifetime_s = lifetime;
    }
    out->action(t(), node,
                "route " + std::string(dht::route_op_name(op)) + " " + key + " " + (dkey.empty() ? "-" : dkey) + " " +
                    hex_of(value) + " " + std::to_string(lifetime));
    net.nodes[node]->chord().route(
        op, dht::NodeId::hash(key), rec,
        [this, node](const dht::RouteResult& r) {
          std::string what = std::to_string(dht::code(r.status)) + " " + std::to_string(r.hops) + " " +
                             (r.responsible ? r.responsible->id.hex() : "-") + " " + std::to_string(r.records.size());
          for (const auto& got : r.records) what += " " + (got.dkey.empty() ? "-" : got.dkey) + " " + hex_of(got.value);
          out->result(t(), node, what);
        },
        net.now);
  }

  void leave(std::size_t node) {
    out->action(t(), node, "leave");
    net.nodes[node]->leave(net.now);
  }
  void die(std::size_t node) {
    out->action(t(), node, "die");
    net.alive[node] = false;
  }
  void finish() { out->end(t()); }
};

std::string sip_request(const std::string& method, const std::string& ruri, const Endpoint& from_addr,
                        const std::string& branch, const std::string& from, const std::string& to,
                        const std::string& call_id, int cseq, const std::string& extra, const std::string& body = {}) {
  return method + " " + ruri + " SIP/2.0\r\nVia: SIP/2.0/UDP " + from_addr.host_port() + ";branch=" + branch +
         ";rport\r\nMax-Forwards: 70\r\nFrom: " + from + "\r\nTo: " + to + "\r\nCall-ID: " + call_id +
         "\r\nCSeq: " + std::to_string(cseq) + " " + method + "\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

const sip::Message* final_response(const Phone& p, std::string_view call_id, std::string_view method) {
  for (const auto& m : p.received) {
    auto cs = sip::parse_cseq(m.header(sip::HeaderId::CSeq).value_or(""));
    if (m.is_response() && m.status() >= 200 && cs && cs->method == method &&
        m.header(sip::HeaderId::CallId) == call_id)
      return &m;
  }
  return nullptr;
}

/// UDP links, recursive routing: every overlay operation, a call, refusals, a leave.
bool record_udp_recursive(const std::string& path) {
  Recorder r(path, Transport::Udp, false);
  if (!r.out->ok()) return false;
  auto& net = r.net;
  for (std::size_t i = 0; i < 4; ++i) {
    r.add_node(i, i == 0 || i == 2);
    net.run_for(seconds(1));
  }
  net.run_for(seconds(66));  // to t = 70 s: joins, two stabilization rounds
  if (!net.ring_errors().empty()) {
    std::fprintf(stderr, "golden_record: the ring is not right: %s\n", net.ring_errors().c_str());
    return false;
  }
  r.route(1, dht::RouteOp::Store, "golden:record", "", "golden value", 600);
  net.run_for(seconds(2));
  r.route(3, dht::RouteOp::Fetch, "golden:record", "", "", 0);
  net.run_for(seconds(2));
  r.route(2, dht::RouteOp::Lookup, "golden:lookup", "", "", 0);
  net.run_for(seconds(2));
  r.route(0, dht::RouteOp::Fetch, "golden:missing", "", "", 0);
  net.run_for(seconds(2));

  // Phones: bob's device is an echo element at node 2's UA side, alice calls it from node 0's.
  const Endpoint echo_addr{Transport::Udp, *IpAddress::parse("127.0.4.2"), 5070};
  r.callee(echo_addr);
  Phone& bob = r.phone(Endpoint{Transport::Udp, *IpAddress::parse("127.0.4.9"), 5070});
  Phone& alice = r.phone(Endpoint{Transport::Udp, *IpAddress::parse("127.0.4.1"), 5070});
  const std::string d = net.config.overlay;
  bob.host->send(ua_addr(2), sip_request("REGISTER", "sip:" + d, bob.addr, "z9hG4bKbobreg1",
                                         "<sip:bob@" + d + ">;tag=b1", "<sip:bob@" + d + ">", "bob-reg", 1,
                                         "Contact: <sip:bob@" + echo_addr.host_port() + ">\r\nExpires: 600\r\n"));
  net.run_for(seconds(2));
  alice.host->send(ua_addr(0), sip_request("REGISTER", "sip:" + d, alice.addr, "z9hG4bKalicereg1",
                                           "<sip:alice@" + d + ">;tag=a1", "<sip:alice@" + d + ">", "alice-reg", 1,
                                           "Contact: <sip:alice@" + alice.addr.host_port() + ">\r\nExpires: 600\r\n"));
  net.run_for(seconds(2));
  const std::string sdp =
      "v=0\r\no=- 1 1 IN IP4 127.0.4.1\r\ns=-\r\nc=IN IP4 127.0.4.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
  const std::string from = "<sip:alice@" + d + ">;tag=caller1";
  alice.host->send(
      ua_addr(0),
      sip_request("INVITE", "sip:bob@" + d, alice.addr, "z9hG4bKinvite1", from, "<sip:bob@" + d + ">", "call-1", 1,
                  "Contact: <sip:alice@" + alice.addr.host_port() + ">\r\nContent-Type: application/sdp\r\n", sdp));
  net.run_for(seconds(2));
  const sip::Message* ok = final_response(alice, "call-1", "INVITE");
  if (ok == nullptr || ok->status() != 200) {
    std::fprintf(stderr, "golden_record: the call was not answered 200\n");
    return false;
  }
  // The dialog as a phone keeps it (RFC 3261 §12.1.2): route set from Record-Route, reversed.
  auto contact = sip::parse_name_address(ok->header(sip::HeaderId::Contact).value_or(""));
  auto to = sip::parse_name_address(ok->header(sip::HeaderId::To).value_or(""));
  std::vector<sip::NameAddress> rr;
  ok->for_each(sip::HeaderId::RecordRoute, [&](std::string_view v) { sip::parse_name_address_list(v, rr, false); });
  std::string routes;
  for (auto it = rr.rbegin(); it != rr.rend(); ++it) routes += "Route: <" + std::string(it->uri.text) + ">\r\n";
  const std::string target(contact->uri.text);
  const std::string to_value = "<sip:bob@" + d + ">;tag=" + std::string(to->params.get("tag").value_or(""));
  alice.host->send(ua_addr(0),
                   sip_request("ACK", target, alice.addr, "z9hG4bKack1", from, to_value, "call-1", 1, routes));
  net.run_for(seconds(2));
  alice.host->send(ua_addr(0),
                   sip_request("BYE", target, alice.addr, "z9hG4bKbye1", from, to_value, "call-1", 2, routes));
  net.run_for(seconds(2));
  if (const sip::Message* bye = final_response(alice, "call-1", "BYE"); bye == nullptr || bye->status() != 200) {
    std::fprintf(stderr, "golden_record: the BYE was not answered 200\n");
    return false;
  }
  alice.host->send(ua_addr(0),
                   sip_request("MESSAGE", "sip:bob@" + d, alice.addr, "z9hG4bKmsg1", "<sip:alice@" + d + ">;tag=m1",
                               "<sip:bob@" + d + ">", "msg-1", 1, "Content-Type: text/plain\r\n", "hello bob"));
  net.run_for(seconds(2));
  alice.host->send(ua_addr(0), sip_request("INVITE", "sip:carol@" + d, alice.addr, "z9hG4bKinvite2", from,
                                           "<sip:carol@" + d + ">", "call-2", 1, ""));
  net.run_for(seconds(2));

  // Strangers' requests to node 1's overlay port: a liveness probe, refusals of every kind.
  Phone& stranger = r.phone(Endpoint{Transport::Udp, *IpAddress::parse("127.0.5.1"), 5070});
  const Endpoint n1 = test::OverlayNet::addr_of(1);
  const std::string n1_uri = "sip:" + std::string(kIds[1]) + "@" + n1.host_port();
  stranger.host->send(n1, sip_request("OPTIONS", n1_uri, stranger.addr, "z9hG4bKs1", "<sip:s@x>;tag=s1",
                                      "<" + n1_uri + ">", "s-1", 1, ""));
  stranger.host->send(n1, sip_request("REGISTER", "sip:" + d, stranger.addr, "z9hG4bKs2", "<sip:s@x>;tag=s2",
                                      "<sip:s@x>", "s-2", 1, ""));
  stranger.host->send(n1, sip_request("INFO", "sip:bob@" + d, stranger.addr, "z9hG4bKs3", "<sip:s@x>;tag=s3",
                                      "<sip:bob@" + d + ">", "s-3", 1, ""));
  stranger.host->send(n1, sip_request("REGISTER", "sip:" + d, stranger.addr, "z9hG4bKs4", "<sip:s@x>;tag=s4",
                                      "<sip:s@x>", "s-4", 1, "DHT-Op: teleport\r\n"));
  stranger.host->send(n1, "REGISTER sip:" + d + " SIP/2.0\r\nVia: SIP/2.0/UDP " + stranger.addr.host_port() +
                              ";branch=z9hG4bKs5\r\nCSeq: one REGISTER\r\nContent-Length: 0\r\n\r\n");
  stranger.host->send(ua_addr(0), sip_request("INVITE", "sip:bob@elsewhere.example", stranger.addr, "z9hG4bKs6",
                                              "<sip:s@x>;tag=s6", "<sip:bob@elsewhere.example>", "s-6", 1, ""));
  net.run_for(seconds(4));

  // Alice unregisters: node 0 removes its entry from the overlay.
  alice.host->send(ua_addr(0),
                   sip_request("REGISTER", "sip:" + d, alice.addr, "z9hG4bKalicereg2", "<sip:alice@" + d + ">;tag=a1",
                               "<sip:alice@" + d + ">", "alice-reg", 2, "Contact: *\r\nExpires: 0\r\n"));
  net.run_for(seconds(4));
  r.leave(3);
  net.run_for(seconds(6));
  r.die(3);
  net.run_for(seconds(40));  // the others notice and repair around it
  r.finish();
  return true;
}

/// TCP links, iterative routing: the redirects (302) and the hand-over over connections.
bool record_tcp_iterative(const std::string& path) {
  Recorder r(path, Transport::Tcp, true);
  if (!r.out->ok()) return false;
  auto& net = r.net;
  for (std::size_t i = 0; i < 4; ++i) {
    r.add_node(i, false);
    net.run_for(seconds(1));
  }
  net.run_for(seconds(66));
  if (!net.ring_errors().empty()) {
    std::fprintf(stderr, "golden_record: the ring is not right: %s\n", net.ring_errors().c_str());
    return false;
  }
  r.route(0, dht::RouteOp::Store, "golden:one", "", "first", 600);
  r.route(2, dht::RouteOp::Store, "golden:two", "device-a", "second", 600);
  net.run_for(seconds(2));
  r.route(1, dht::RouteOp::Fetch, "golden:two", "", "", 0);
  r.route(3, dht::RouteOp::Lookup, "golden:one", "", "", 0);
  net.run_for(seconds(2));
  r.route(3, dht::RouteOp::Fetch, "golden:none", "", "", 0);
  net.run_for(seconds(2));
  r.leave(1);
  net.run_for(seconds(6));
  r.die(1);
  net.run_for(seconds(40));
  r.route(0, dht::RouteOp::Fetch, "golden:two", "", "", 0);
  net.run_for(seconds(2));
  r.finish();
  return true;
}

}  // namespace
}  // namespace p2psip::golden

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: golden_record OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  if (!p2psip::golden::record_udp_recursive(dir + "/udp_recursive.capture")) return 1;
  if (!p2psip::golden::record_tcp_iterative(dir + "/tcp_iterative.capture")) return 1;
  std::printf("golden_record: wrote %s/udp_recursive.capture and %s/tcp_iterative.capture\n", dir.c_str(), dir.c_str());
  return 0;
}
