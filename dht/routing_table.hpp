// A Chord peer's routing state: predecessor, successor list and finger table (Stoica et al. 2001;
// RELOAD CHORD-RELOAD, RFC 6940 §10). Plain data with the ring rules; no I/O.
#pragma once

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dht/messages.hpp"

namespace p2psip::dht {

/// Peers a routed request asks to be routed around, as if they had left the ring (a fetch tried
/// again past a peer that withheld or forged its answer: DHT-Exclude).
using Excluded = std::span<const NodeId>;
/// Whether `id` is one of them.
[[nodiscard]] inline bool is_excluded(Excluded excluded, NodeId id) {
  return std::find(excluded.begin(), excluded.end(), id) != excluded.end();
}

class RoutingTable {
 public:
  static constexpr int kFingers = 128;

  RoutingTable(Peer self, std::size_t successor_count, std::size_t predecessor_count = 3)
      : self_(std::move(self)), max_successors_(successor_count), max_predecessors_(predecessor_count) {}

  [[nodiscard]] const Peer& self() const { return self_; }
  /// Where this peer is reached, once it knows (before it joins): a peer behind a cone NAT is
  /// named by its server-reflexive address and reached by Attach.
  void set_self_address(const Endpoint& addr, bool attach) {
    self_.addr = addr;
    self_.attach = attach;
  }
  /// The nearest predecessor, if one is known.
  [[nodiscard]] std::optional<Peer> predecessor() const {
    return predecessors_.empty() ? std::nullopt : std::optional<Peer>(predecessors_.front());
  }
  /// The predecessor list, nearest first (RELOAD keeps at least 3).
  [[nodiscard]] const std::vector<Peer>& predecessors() const { return predecessors_; }
  [[nodiscard]] const std::vector<Peer>& successors() const { return successors_; }
  /// The first successor, or self when alone.
  [[nodiscard]] const Peer& successor() const { return successors_.empty() ? self_ : successors_.front(); }
  /// Finger i: the peer responsible for self + 2^i, when known. Fingers whose start lies between
  /// us and our successor are the successor itself and are not stored (see clear_fingers_below).
  [[nodiscard]] std::optional<Peer> finger(int i) const;
  [[nodiscard]] bool alone() const { return successors_.empty(); }

  /// True when this peer is responsible for `key`: key in (predecessor, self]. Alone: always.
  /// With no predecessor known, only when `final_hop` says a peer routed it here as our key.
  /// Excluded peers count as gone: the predecessor is the nearest one not excluded, and an
  /// excluded self is responsible for nothing (unless alone).
  [[nodiscard]] bool responsible_for(NodeId key, bool final_hop = false, Excluded excluded = {}) const;
  /// True when `key` lies in (self, successor]: the successor (the first not excluded) is responsible.
  [[nodiscard]] bool successor_responsible(NodeId key, Excluded excluded = {}) const;
  /// The nearest predecessor not excluded, if one is known.
  [[nodiscard]] std::optional<Peer> predecessor(Excluded excluded) const;
  /// The first successor not excluded, or self when there is none.
  [[nodiscard]] const Peer& successor(Excluded excluded) const;
  /// The known peer that most closely precedes `key` (fingers and successors, excluded ones left
  /// out), or the successor. With `whole_successor_list` false only the fingers and the first
  /// successor are candidates (base Chord, as the Chord paper analyses its path length).
  [[nodiscard]] Peer next_hop(NodeId key, bool whole_successor_list = true, Excluded excluded = {}) const;

  /// Replaces the predecessor list: `first`, then `rest`, nearest first, without self or duplicates.
  void set_predecessors(const Peer& first, const std::vector<Peer>& rest);
  void clear_predecessors() { predecessors_.clear(); }
  /// Replaces the successor list: `first`, then `rest` in order, without self or duplicates.
  void set_successors(const Peer& first, const std::vector<Peer>& rest);
  void set_finger(int i, std::optional<Peer> p);
  /// Forgets fingers 0 .. i-1 (those the successor covers).
  void clear_fingers_below(int i);
  /// A live peer learned from a message: joins the successor list if it is closer than its end.
  /// Returns true when the first successor changed.
  bool consider(const Peer& p);
  /// A live peer learned from a message, as a finger: it becomes finger i, for the i with
  /// self + 2^i <= p < self + 2^(i+1), when that finger is unknown or lies farther past its start
  /// (the peer is then nearer the finger's true value, the first peer at or past the start). Peers
  /// the successor covers are not fingers. Returns true when a finger changed.
  bool offer_finger(const Peer& p);
  /// A peer that says it precedes us (Notify, Join): becomes the predecessor if it lies between the
  /// current one and us, or if there is none (Chord's notify). Returns true when it changed.
  bool offer_predecessor(const Peer& p);
  /// Forgets a failed peer everywhere. Returns true when it was the first successor.
  bool remove(NodeId id);

  /// The mean gap between peers' ids, estimated from our successor list (about 2^128 / N), in ids;
  /// nullopt with fewer than 2 successors.
  [[nodiscard]] std::optional<double> mean_gap() const;
  /// Distinct peers in the finger table.
  [[nodiscard]] std::size_t distinct_fingers() const;
  /// Every distinct peer known (successors, predecessors, fingers).
  [[nodiscard]] std::vector<Peer> known_peers() const;
  /// The peer with Node-ID `id` among the successors, predecessors and fingers, if known.
  [[nodiscard]] std::optional<Peer> find(NodeId id) const;
  /// What is wrong with the table: lists out of ring order, holding self or a peer twice, longer
  /// than their bounds, fingers out of order; "" when nothing is (core/invariant.hpp).
  [[nodiscard]] std::string violation() const;

 private:
  Peer self_;
  std::size_t max_successors_;
  std::size_t max_predecessors_;
  std::vector<Peer> predecessors_;
  std::vector<Peer> successors_;
  // Only the distinct, known fingers, by index (about log2 N of 128): a node's largest piece of
  // routing state, so kept compact for simulations of millions of nodes.
  std::vector<std::pair<std::uint8_t, Peer>> fingers_;
};

}  // namespace p2psip::dht
