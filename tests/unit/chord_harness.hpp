// An in-memory network of ChordNodes on virtual time: every message takes `latency`, a request to a
// dead or unknown peer fails after `timeout`. Used to check the protocol against the ideal ring.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "dht/chord_node.hpp"
#include "sim/virtual_network.hpp"

namespace p2psip::test {

/// Checks live peers against the ideal ring (sorted by id): each one's successor, predecessor and,
/// with `lists`, its whole successor list. Returns "" or the peers (by position) that are wrong.
inline std::string ring_errors(std::vector<const dht::ChordNode*> live, std::size_t successors, bool lists,
                               std::size_t predecessors = 3) {
  std::sort(live.begin(), live.end(), [](auto* a, auto* b) { return a->table().self().id < b->table().self().id; });
  std::string errors;
  std::size_t n = live.size();
  auto id = [&](std::size_t k) { return live[k % n]->table().self().id; };
  for (std::size_t k = 0; k < n; ++k) {
    const auto& t = live[k]->table();
    std::string at = std::to_string(k);
    if (n > 1 && (t.alone() || t.successor().id != id(k + 1))) errors += "succ@" + at + " ";
    if (n > 1 && (!t.predecessor() || t.predecessor()->id != id(k + n - 1))) errors += "pred@" + at + " ";
    if (!lists) continue;
    std::size_t expect = std::min(successors, n - 1);
    bool ok = t.successors().size() == expect;
    for (std::size_t j = 0; ok && j < expect; ++j) ok = t.successors()[j].id == id(k + 1 + j);
    if (!ok) errors += "list@" + at + " ";
    std::size_t expect_preds = std::min(predecessors, n - 1);
    ok = t.predecessors().size() == expect_preds;
    for (std::size_t j = 0; ok && j < expect_preds; ++j) ok = t.predecessors()[j].id == id(k + 2 * n - 1 - j);
    if (!ok) errors += "preds@" + at + " ";
  }
  return errors;
}

class ChordNet {
 public:
  Duration latency = millis(10);
  Duration timeout = seconds(2);
  dht::ChordConfig config;

  struct Slot;
  class Link : public dht::ChordTransport, public Environment {
   public:
    Link(ChordNet& net, std::size_t index) : net_(net), index_(index), rng_(index * 7919 + 17) {}
    bool send(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now) override {
      net_.deliver_request(index_, id, to, r, now);
      return true;
    }
    void reply(dht::ReplyHandle h, const dht::Response& r, Instant now) override { net_.deliver_reply(h, r, now); }
    bool send(const Endpoint&, std::string_view) override { return false; }
    std::uint64_t random() override { return rng_(); }
    std::uint64_t secure_random() override { return rng_(); }

   private:
    ChordNet& net_;
    std::size_t index_;
    std::mt19937_64 rng_;
  };
  struct Slot {
    std::unique_ptr<Link> link;
    std::unique_ptr<dht::ChordNode> node;
    bool alive = true;
  };

  std::vector<Slot> slots;
  Instant now{};

  static Endpoint addr_of(std::size_t i) {
    return Endpoint{Transport::Udp, *IpAddress::parse("127.0.1." + std::to_string(i % 250 + 1)),
                    static_cast<std::uint16_t>(20000 + i)};
  }

  /// Adds a peer with the given id; it joins through `bootstrap` (none: starts a ring). `attach`:
  /// it is a peer reached by Attach (behind a cone NAT), as dht::Peer::attach says.
  std::size_t add(dht::NodeId id, std::optional<std::size_t> bootstrap, bool attach = false) {
    std::size_t i = slots.size();
    Slot s;
    s.link = std::make_unique<Link>(*this, i);
    s.node = std::make_unique<dht::ChordNode>(dht::Peer{id, addr_of(i), attach}, config, *s.link, *s.link);
    slots.push_back(std::move(s));
    std::vector<Endpoint> boot;
    if (bootstrap) boot.push_back(addr_of(*bootstrap));
    slots[i].node->start(boot, now);
    return i;
  }
  void kill(std::size_t i) { slots[i].alive = false; }

  void run_for(Duration d) {
    network_.run_for(
        now, d,
        [this] {
          Instant next = kInstantMax;
          for (auto& s : slots) {
            if (s.alive) next = std::min(next, s.node->next_wakeup());
          }
          return next;
        },
        [this](Instant t) {
          for (auto& s : slots) {
            if (s.alive && s.node->next_wakeup() <= t) s.node->advance(t);
          }
        });
  }

  /// The live peers sorted by id: the ring as it should be.
  [[nodiscard]] std::vector<std::size_t> ideal_ring() const {
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].alive && slots[i].node->joined()) live.push_back(i);
    }
    std::sort(live.begin(), live.end(), [&](auto a, auto b) { return id(a) < id(b); });
    return live;
  }
  [[nodiscard]] dht::NodeId id(std::size_t i) const { return slots[i].node->table().self().id; }
  /// The live peer responsible for `key` in the ideal ring.
  [[nodiscard]] std::size_t responsible(dht::NodeId key) const {
    auto ring = ideal_ring();
    for (auto i : ring) {
      if (id(i) >= key) return i;
    }
    return ring.front();
  }
  /// Every live peer's successor list and predecessor as the ideal ring says; "" or what is wrong.
  [[nodiscard]] std::string ring_errors(bool lists = true) const {
    std::vector<const dht::ChordNode*> live;
    for (auto i : ideal_ring()) live.push_back(slots[i].node.get());
    return test::ring_errors(live, config.successors, lists);
  }

  /// Sees every request and reply (for debugging a scenario).
  std::function<void(std::size_t from, const dht::Peer& to, const dht::Request&)> trace_request;
  std::function<void(std::size_t to, const dht::Response&)> trace_reply;

  void deliver_request(std::size_t from, dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant at) {
    if (trace_request) trace_request(from, to, r);
    std::optional<std::size_t> target;
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (addr_of(i) == to.addr) target = i;
    }
    if (!target || !slots[*target].alive) {
      schedule(at + timeout, [this, from, id] {
        if (slots[from].alive) slots[from].node->on_failure(id, now);
      });
      return;
    }
    std::size_t t = *target;
    schedule(at + latency, [this, from, id, t, r] {
      if (!slots[t].alive) {
        schedule(now + timeout - latency, [this, from, id] {
          if (slots[from].alive) slots[from].node->on_failure(id, now);
        });
        return;
      }
      dht::ReplyHandle h = next_handle_++;
      replies_[h] = {from, id};
      slots[t].node->on_request(h, r, now);
    });
    ++messages;
  }
  void deliver_reply(dht::ReplyHandle h, const dht::Response& r, Instant at) {
    auto [from, id] = replies_.at(h);
    replies_.erase(h);
    if (trace_reply) trace_reply(from, r);
    schedule(at + latency, [this, from = from, id = id, r] {
      if (slots[from].alive) slots[from].node->on_response(id, r, now);
    });
    ++messages;
  }
  std::uint64_t messages = 0;

 private:
  void schedule(Instant at, std::function<void()> fn) { network_.at(at, std::move(fn)); }
  sim::VirtualNetwork network_;
  std::map<dht::ReplyHandle, std::pair<std::size_t, dht::RequestId>> replies_;
  dht::ReplyHandle next_handle_ = 1;
};

}  // namespace p2psip::test
