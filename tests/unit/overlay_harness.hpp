// A network of OverlayNodes exchanging real SIP bytes on virtual time: UDP datagrams go to
// receive_datagram, TCP messages are framed and go to receive. A message to a dead or unknown
// address is lost (the sender's transaction times out, as on a real network).
#pragma once

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>

#include "chord_harness.hpp"
#include "node/overlay/overlay_node.hpp"
#include "sim/virtual_network.hpp"

namespace p2psip::test {

class OverlayNet {
 public:
  Duration latency = millis(5);
  bool verbose = false;  ///< nodes' log lines to stderr (for debugging a test)
  /// Sees every node's log lines (a test that checks what nodes concluded).
  std::function<void(const Endpoint& node, LogLevel level, std::string_view text)> on_log;
  overlay::OverlayConfig config;
  /// Sees every message as it is sent (the golden recorder): the time, its sender, its
  /// destination (with the transport) and its bytes.
  std::function<void(Instant at, const Endpoint& from, const Endpoint& to, std::string_view bytes)> on_send;
  /// Nonzero: every host's draws are multiples of this many (the golden recorder sets a tenth of
  /// the stabilization interval in µs), so that Chord's stabilization jitter, a draw modulo that
  /// tenth, is always zero and a node's timing depends on its inputs alone.
  std::uint64_t random_quantum = 0;
  /// True: every host draws its secure random bits from a stream of their own, apart from its
  /// seeded one, and every draw is kept in `seeded_draws` or `secure_draws` (a test that no seeded
  /// value reaches the wire). False: one stream serves both, in the order tests always drew.
  bool separate_streams = false;
  /// When it says so, a host's send is refused at once (Environment::send returns false): an
  /// immediate transport error, as a runtime reports one for a connection it cannot open.
  std::function<bool(const Endpoint& from, const Endpoint& to)> refuse;
  std::vector<std::uint64_t> seeded_draws, secure_draws;

  class Host : public Environment {
   public:
    Host(OverlayNet& net, Endpoint self, std::uint64_t seed)
        : net_(net), self_(self), rng_(seed), secure_rng_(seed ^ 0x5ec0de5ec0de5ec0ULL) {}
    bool send(const Endpoint& to, std::string_view bytes) override {
      if (net_.refuse && net_.refuse(self_, to)) return false;
      net_.deliver(self_, to, std::string(bytes));
      return true;
    }
    std::uint64_t random() override {
      const std::uint64_t v = rng_();
      const std::uint64_t out = net_.random_quantum == 0 ? v : ((v >> 24) + 1) * net_.random_quantum;
      if (net_.separate_streams) net_.seeded_draws.push_back(out);
      return out;
    }
    std::uint64_t secure_random() override {
      if (!net_.separate_streams) return random();
      return net_.secure_draws.emplace_back(secure_rng_());
    }
    void log(LogLevel level, std::string_view text) override {
      if (net_.on_log) net_.on_log(self_, level, text);
      if (net_.verbose)
        std::fprintf(stderr, "[%d] %s: %.*s\n", static_cast<int>(level), self_.host_port().c_str(),
                     static_cast<int>(text.size()), text.data());
    }

   private:
    OverlayNet& net_;
    Endpoint self_;
    std::mt19937_64 rng_;
    std::mt19937_64 secure_rng_;
  };

  /// Something else on the network besides overlay nodes (a node's UA side, a softphone): bytes
  /// for its address go to `receive`, and it is woken like the nodes.
  struct Member {
    Endpoint addr;
    std::function<void(std::string_view bytes, const Endpoint& from, Instant now)> receive;
    std::function<Instant()> next_wakeup = [] { return kInstantMax; };
    std::function<void(Instant)> advance = [](Instant) {};
  };
  std::vector<Member> members;
  std::vector<std::unique_ptr<Host>> member_hosts;

  /// An Environment that sends from `addr` (for a member).
  Host& host_at(const Endpoint& addr) {
    member_hosts.push_back(std::make_unique<Host>(*this, addr, member_hosts.size() * 7919 + 11));
    return *member_hosts.back();
  }

  /// Runs for each node after it is made and before it starts (to give it an authenticator).
  std::function<void(std::size_t index, overlay::OverlayNode& node)> before_start;

  std::vector<std::unique_ptr<Host>> hosts;
  std::vector<std::unique_ptr<overlay::OverlayNode>> nodes;
  std::vector<bool> alive;
  Instant now{};
  std::uint64_t datagrams = 0, stream_messages = 0, bytes = 0;

  static Endpoint addr_of(std::size_t i) {
    return Endpoint{Transport::Udp, *IpAddress::parse("127.0.2." + std::to_string(i % 250 + 1)),
                    static_cast<std::uint16_t>(30000 + i)};
  }

  std::size_t add(dht::NodeId id, std::optional<std::size_t> bootstrap) {
    std::size_t i = nodes.size();
    hosts.push_back(std::make_unique<Host>(*this, addr_of(i), i * 104729 + 3));
    nodes.push_back(std::make_unique<overlay::OverlayNode>(dht::Peer{id, addr_of(i)}, config, *hosts.back()));
    alive.push_back(true);
    if (before_start) before_start(i, *nodes[i]);
    std::vector<Endpoint> boot;
    if (bootstrap) boot.push_back(addr_of(*bootstrap));
    nodes[i]->start(boot, now);
    return i;
  }

  void deliver(const Endpoint& from, const Endpoint& to, std::string bytes_out) {
    bytes += bytes_out.size();
    Endpoint source = from;
    source.transport = to.transport;
    if (on_send) on_send(now, source, to, bytes_out);
    for (std::size_t m = 0; m < members.size(); ++m) {
      if (members[m].addr.ip == to.ip && members[m].addr.port == to.port) {
        network_.at(now + latency, [this, m, source, b = std::move(bytes_out)] { members[m].receive(b, source, now); });
        return;
      }
    }
    std::optional<std::size_t> target;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (addr_of(i).ip == to.ip && addr_of(i).port == to.port) target = i;
    }
    if (!target) return;
    std::size_t t = *target;
    network_.at(now + latency, [this, t, source, to, b = std::move(bytes_out)] {
      if (!alive[t]) return;
      if (to.transport == Transport::Udp) {
        ++datagrams;
        nodes[t]->receive_datagram(b, source, now);
      } else {
        ++stream_messages;
        std::size_t used = 0;
        auto m = sip::parse_message(b, config.limits, true, &used);
        if (m) nodes[t]->receive(*m, source, now);
      }
    });
  }

  void run_for(Duration d) {
    network_.run_for(
        now, d,
        [this] {
          Instant next = kInstantMax;
          for (std::size_t i = 0; i < nodes.size(); ++i) {
            if (alive[i]) next = std::min(next, nodes[i]->next_wakeup());
          }
          for (const auto& m : members) next = std::min(next, m.next_wakeup());
          return next;
        },
        [this](Instant t) {
          for (std::size_t i = 0; i < nodes.size(); ++i) {
            if (alive[i] && nodes[i]->next_wakeup() <= t) nodes[i]->advance(t);
          }
          for (auto& m : members) {
            if (m.next_wakeup() <= t) m.advance(t);
          }
        });
  }

  /// Adds `n` peers with random ids, each joining through the first one, `gap` apart.
  void grow(std::size_t n, std::mt19937_64& rng, Duration gap) {
    for (std::size_t i = 0; i < n; ++i) {
      const bool first = nodes.empty();
      add(dht::NodeId{rng(), rng()}, first ? std::nullopt : std::optional<std::size_t>(0));
      run_for(gap);
    }
  }

  /// Node indexes in ring (id) order.
  [[nodiscard]] std::vector<std::size_t> ring_order() const {
    std::vector<std::size_t> order(nodes.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) {
      return nodes[a]->chord().table().self().id < nodes[b]->chord().table().self().id;
    });
    return order;
  }

  [[nodiscard]] std::string ring_errors(bool lists = true) const {
    std::vector<const dht::ChordNode*> live;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (alive[i]) live.push_back(&nodes[i]->chord());
    }
    return test::ring_errors(live, config.chord.successors, lists);
  }

 private:
  sim::VirtualNetwork network_;
};

}  // namespace p2psip::test
