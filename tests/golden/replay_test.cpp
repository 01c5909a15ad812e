// Replays the golden captures (capture.hpp, recorded by golden_record from a known-good build)
// against today's node: for every node of a capture, a fresh assembled peer (node/peer) with its
// identity and settings is fed exactly what that node received, when it received it, and what it
// sends must be what the capture says it sent, at the same times, with the same headers, bodies
// and status codes.
// Tokens a node draws itself (branches, tags, Call-IDs: 16 hex digits) may differ: they are compared
// masked, and the captured messages that name the recorded node's tokens are given the replayed
// node's instead before it receives them.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

#include "capture.hpp"
#include "node/peer/peer.hpp"

namespace p2psip::golden {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// Where the 16-hex-digit tokens are: runs of exactly 16 hex digits (Node-IDs have 32).
std::vector<std::size_t> token_positions(std::string_view s) {
  std::vector<std::size_t> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_hex(s[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_hex(s[j])) ++j;
    if (j - i == 16) out.push_back(i);
    i = j;
  }
  return out;
}

std::string masked(std::string_view s) {
  std::string out(s);
  for (std::size_t p : token_positions(s)) out.replace(p, 16, 16, '#');
  return out;
}

bool same_place(const Endpoint& a, const Endpoint& b) {
  return a.ip == b.ip && a.port == b.port;
}

struct Output {
  std::int64_t t_us = 0;
  Endpoint from, to;
  std::string bytes;
};

/// One face of the replayed node: what it sends is kept, with the time.
class Face : public Environment {
 public:
  Face(std::vector<Output>& out, const std::int64_t& now_us, Endpoint self, std::uint64_t quantum, std::uint64_t seed)
      : out_(out), now_us_(now_us), self_(self), quantum_(quantum), rng_(seed) {}
  bool send(const Endpoint& to, std::string_view bytes) override {
    Endpoint from = self_;
    from.transport = to.transport;
    out_.push_back(Output{now_us_, from, to, std::string(bytes)});
    return true;
  }
  std::uint64_t random() override {
    const std::uint64_t v = rng_();
    return quantum_ == 0 ? v : ((v >> 24) + 1) * quantum_;
  }
  /// Tokens: any values do (the replay maps them onto the capture's).
  std::uint64_t secure_random() override { return rng_(); }

 private:
  std::vector<Output>& out_;
  const std::int64_t& now_us_;
  Endpoint self_;
  std::uint64_t quantum_;
  std::mt19937_64 rng_;
};

/// The node under replay: the assembled peer, with a phone side where the capture's node had one.
class Subject {
 public:
  Subject(const Capture& c, const NodeLine& n) : n_(n) {
    const auto quantum = static_cast<std::uint64_t>(c.param_int("random_quantum"));
    overlay_face_ = std::make_unique<Face>(out_, now_us_, n.overlay, quantum, 1000 + n.index);
    peer::PeerConfig pc;
    pc.id = *dht::NodeId::from_hex(n.id_hex);
    pc.address = n.overlay;
    overlay::OverlayConfig& oc = pc.overlay;
    oc.overlay = c.param("overlay");
    oc.link_transport = *transport_from_name(c.param("link_transport"));
    oc.chord.iterative = c.param("iterative") == "1";
    oc.chord.stabilize_interval = millis(c.param_int("stabilize_ms"));
    oc.timers.t1 = millis(c.param_int("t1_ms"));
    limits_ = oc.limits;
    if (n.ua) {
      ua_face_ = std::make_unique<Face>(out_, now_us_, *n.ua, quantum, 2000 + n.index);
      proxy::UaSideConfig uc;
      uc.registrar.domain = oc.overlay;
      uc.ua_address = *n.ua;
      pc.phones = uc;
    }
    peer_ = std::make_unique<peer::Peer>(std::move(pc), *overlay_face_, ua_face_.get());
  }

  [[nodiscard]] bool owns(const Endpoint& e) const {
    return same_place(e, n_.overlay) || (n_.ua && same_place(e, *n_.ua));
  }
  [[nodiscard]] Instant next_wakeup() const { return peer_->next_wakeup(); }
  void advance(Instant now) {
    set_now(now);
    peer_->advance(now);
  }
  void deliver(const Endpoint& from, const Endpoint& to, const std::string& bytes, Instant now) {
    set_now(now);
    const peer::Face face = n_.ua && same_place(to, *n_.ua) ? peer::Face::Phones : peer::Face::Overlay;
    if (to.transport == Transport::Udp) {
      peer_->receive_datagram(face, bytes, from, now);
      return;
    }
    auto m = sip::parse_message(bytes, limits_, true, nullptr);
    if (!m) return;  // the recording's network dropped it too
    peer_->receive(face, std::move(*m), from, now);
  }
  void start(const std::vector<Endpoint>& bootstrap, Instant now) {
    set_now(now);
    peer_->start(bootstrap, now);
  }
  void leave(Instant now) {
    set_now(now);
    peer_->overlay().leave(now);
  }
  void route(dht::RouteOp op, const std::string& key, std::optional<dht::Record> record, dht::RouteCallback cb,
             Instant now) {
    set_now(now);
    peer_->chord().route(op, dht::NodeId::hash(key), std::move(record), std::move(cb), now);
  }

  std::vector<Output>& outputs() { return out_; }

 private:
  void set_now(Instant now) { now_us_ = now.time_since_epoch().count(); }

  NodeLine n_;
  std::int64_t now_us_ = 0;
  std::vector<Output> out_;
  sip::Limits limits_;
  std::unique_ptr<Face> overlay_face_, ua_face_;
  std::unique_ptr<peer::Peer> peer_;
};

/// Replays node `n` of capture `c`; returns the differences found (empty: none).
std::vector<std::string> replay(const Capture& c, const NodeLine& n) {
  std::vector<std::string> problems;
  Subject s(c, n);
  const std::int64_t latency = c.param_int("latency_us");

  // What the recorded node was given (deliveries at send time + latency, its own actions) and what
  // it did (messages, route results).
  struct Input {
    std::int64_t t = 0;
    int order = 0;  // deliveries at a time come before actions at that time
    const Item* item = nullptr;
  };
  std::vector<Input> inputs;
  std::vector<const Item*> expected_out;
  std::vector<const Item*> expected_results;
  std::int64_t until = c.end_us;
  for (const Item& it : c.items) {
    if (it.kind == Item::Kind::Action && it.node == n.index && !it.words.empty() && it.words[0] == "die") {
      until = it.t_us;
    }
  }
  for (const Item& it : c.items) {
    switch (it.kind) {
      case Item::Kind::Message:
        if (s.owns(it.to) && it.t_us + latency <= until) inputs.push_back(Input{it.t_us + latency, 0, &it});
        if (s.owns(it.from) && it.t_us <= until) expected_out.push_back(&it);
        break;
      case Item::Kind::Action:
        if (it.node == n.index && it.t_us <= until) inputs.push_back(Input{it.t_us, 1, &it});
        break;
      case Item::Kind::Result:
        if (it.node == n.index && it.t_us <= until) expected_results.push_back(&it);
        break;
    }
  }
  std::stable_sort(inputs.begin(), inputs.end(),
                   [](const Input& a, const Input& b) { return a.t != b.t ? a.t < b.t : a.order < b.order; });

  std::vector<bool> matched(expected_out.size(), false);
  std::vector<std::string> expected_masked;
  for (const Item* e : expected_out) expected_masked.push_back(masked(e->bytes));
  std::map<std::string, std::string> tokens;  // recorded node's token -> the replayed node's
  std::vector<std::string> results;
  const std::string who = "node " + std::to_string(n.index) + " (" + n.id_hex.substr(0, 8) + ")";

  auto check_outputs = [&] {
    for (const Output& o : s.outputs()) {
      const std::string m = masked(o.bytes);
      bool found = false;
      for (std::size_t i = 0; i < expected_out.size() && !found; ++i) {
        const Item& e = *expected_out[i];
        if (matched[i] || !(e.from == o.from) || !(e.to == o.to) || expected_masked[i] != m) continue;
        matched[i] = found = true;
        if (e.t_us != o.t_us) {
          problems.push_back(who + " sent at " + std::to_string(o.t_us) + " us what the capture has at " +
                             std::to_string(e.t_us) + " us:\n" + o.bytes);
        }
        for (std::size_t p : token_positions(e.bytes)) tokens[e.bytes.substr(p, 16)] = o.bytes.substr(p, 16);
      }
      if (!found) {
        problems.push_back(who + " sent at " + std::to_string(o.t_us) + " us from " + o.from.to_string() + " to " +
                           o.to.to_string() + " what the capture does not have:\n" + o.bytes);
      }
    }
    s.outputs().clear();
  };
  auto run_timers = [&](std::int64_t up_to, bool inclusive) {
    for (;;) {
      const Instant w = s.next_wakeup();
      const std::int64_t wt = w.time_since_epoch().count();
      if (w == kInstantMax || wt > up_to || (!inclusive && wt == up_to)) return;
      s.advance(w);
      check_outputs();
    }
  };
  auto at = [](std::int64_t t) { return Instant(Duration(t)); };

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Input& in = inputs[k];
    // As the recording's network did at each instant: every delivery due, then every timer due,
    // then the test's own actions.
    if (k == 0 || inputs[k - 1].t != in.t) run_timers(in.t, false);
    const Item& it = *in.item;
    if (it.kind == Item::Kind::Message) {
      std::string bytes = it.bytes;
      for (std::size_t p : token_positions(bytes)) {
        auto found = tokens.find(bytes.substr(p, 16));
        if (found != tokens.end()) bytes.replace(p, 16, found->second);
      }
      s.deliver(it.from, it.to, bytes, at(in.t));
      check_outputs();
      const bool last_delivery = k + 1 == inputs.size() || inputs[k + 1].t != in.t || inputs[k + 1].order != 0;
      if (last_delivery) run_timers(in.t, true);
      continue;
    }
    run_timers(in.t, true);  // the recording ran the network up to this instant, then acted
    const auto& w = it.words;
    if (w[0] == "start") {
      std::vector<Endpoint> boot;
      if (w.size() > 1 && w[1] != "-") boot.push_back(*parse_endpoint(w[1]));
      s.start(boot, at(in.t));
    } else if (w[0] == "leave") {
      s.leave(at(in.t));
    } else if (w[0] == "route" && w.size() == 6) {
      auto op = dht::route_op_from_name(w[1]);
      std::optional<dht::Record> rec;
      if (*op == dht::RouteOp::Store) {
        rec = dht::Record{};
        rec->key = dht::NodeId::hash(w[2]);
        rec->name = w[2];
        rec->dkey = w[3] == "-" ? "" : w[3];
        rec->value = unhex(w[4]);
        rec->owner = n.id_hex;
        rec->lifetime_s = static_cast<std::uint32_t>(std::stoul(w[5]));
      }
      s.route(
          *op, w[2], rec,
          [&results, &s, &in](const dht::RouteResult& r) {
            (void)s;
            (void)in;
            std::string what = std::to_string(dht::code(r.status)) + " " + std::to_string(r.hops) + " " +
                               (r.responsible ? r.responsible->id.hex() : "-") + " " + std::to_string(r.records.size());
            for (const auto& got : r.records)
              what += " " + (got.dkey.empty() ? "-" : got.dkey) + " " + hex_of(got.value);
            results.push_back(what);
          },
          at(in.t));
    } else if (w[0] != "die") {
      problems.push_back("unknown action '" + w[0] + "'");
    }
    check_outputs();
  }
  run_timers(until, true);

  for (std::size_t i = 0; i < expected_out.size(); ++i) {
    if (matched[i]) continue;
    const Item& e = *expected_out[i];
    problems.push_back(who + " did not send what the capture has at " + std::to_string(e.t_us) + " us from " +
                       e.from.to_string() + " to " + e.to.to_string() + ":\n" + e.bytes);
  }
  std::vector<std::string> want;
  for (const Item* r : expected_results) {
    std::string line;
    for (const auto& word : r->words) line += (line.empty() ? "" : " ") + word;
    want.push_back(line);
  }
  if (results != want) {
    std::string text = who + " route results differ:\n  replayed:";
    for (const auto& r : results) text += "\n    " + r;
    text += "\n  captured:";
    for (const auto& r : want) text += "\n    " + r;
    problems.push_back(text);
  }
  return problems;
}

class GoldenReplay : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenReplay, EveryNodeSendsWhatTheCapturedNodeSent) {
  std::string error;
  auto capture = read_capture(std::string(P2PSIP_GOLDEN_DIR) + "/" + GetParam() + ".capture", error);
  ASSERT_TRUE(capture) << error;
  ASSERT_EQ(capture->nodes.size(), 4u);
  std::size_t messages = 0;
  for (const Item& it : capture->items) messages += it.kind == Item::Kind::Message ? 1 : 0;
  ASSERT_GT(messages, 100u);  // a capture of the overlay at work, not an empty file
  for (const NodeLine& n : capture->nodes) {
    auto problems = replay(*capture, n);
    EXPECT_TRUE(problems.empty()) << problems.size() << " difference(s); the first:\n"
                                  << (problems.empty() ? "" : problems.front());
  }
}

INSTANTIATE_TEST_SUITE_P(Captures, GoldenReplay, ::testing::Values("udp_recursive", "tcp_iterative"));

/// The masking itself: tokens are runs of exactly 16 hex digits, Node-IDs and other numbers stay.
TEST(GoldenMask, MasksExactly16HexDigitRuns) {
  EXPECT_EQ(masked("branch=z9hG4bK0123456789abcdef;rport"), "branch=z9hG4bK################;rport");
  EXPECT_EQ(masked("<sip:10000000000000000000000000000001@127.0.2.1:30000>"),
            "<sip:10000000000000000000000000000001@127.0.2.1:30000>");
  EXPECT_EQ(masked("Call-ID: 00000000000000ab@golden.p2psip"), "Call-ID: ################@golden.p2psip");
  EXPECT_EQ(masked("CSeq: 1234567890 REGISTER"), "CSeq: 1234567890 REGISTER");
}

}  // namespace
}  // namespace p2psip::golden
