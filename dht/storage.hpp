// Records held by a peer: those it is responsible for and replicas of its predecessors'. Whether a
// record is primary is derived from the ring (key in (predecessor, self]), never stored.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dht/messages.hpp"

namespace p2psip::dht {

class Storage {
 public:
  Storage() = default;
  // The expiry index points into the record map's nodes: moves keep them, copies would not.
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Storage(Storage&&) = default;
  Storage& operator=(Storage&&) = default;

  /// Stores or replaces the entry (key, dkey). An older record than the one held (stored_at_us)
  /// is ignored (replicas arriving late must not roll a value back). A record with lifetime 0
  /// removes the entry. Returns true when the store took effect.
  bool put(const Record& r);
  /// The entry (key, dkey), or null.
  [[nodiscard]] const Record* get(NodeId key, std::string_view dkey = {}) const;
  /// Every entry under `key` still alive at `now`, in dictionary-key order. (A record's
  /// stored_at_us is the storing peer's clock: the instant it was stored, in µs.)
  [[nodiscard]] std::vector<Record> entries(NodeId key, Instant now) const;
  /// Drops records whose lifetime has run out at `now`; returns how many. Costs the number
  /// dropped (times log n), not a scan of every record: a node holding hundreds of thousands of
  /// registrations must not stall its event loop once per round.
  std::size_t expire(Instant now);
  /// The earliest expiry, kInstantMax when empty. Constant time.
  [[nodiscard]] Instant next_expiry() const;
  /// Records whose key lies in (from, to] (the whole ring when from == to), in key order.
  [[nodiscard]] std::vector<Record> range(NodeId from, NodeId to) const;
  [[nodiscard]] std::vector<Record> all() const;
  /// At most `max` live records whose name begins with `prefix`, the first ones whose keys come
  /// after `from` going round the ring once (a Find, RFC 6940 §7.4.4): nearest first.
  [[nodiscard]] std::vector<Record> nearest(NodeId from, std::string_view prefix, std::size_t max, Instant now) const;
  [[nodiscard]] std::size_t size() const { return records_.size(); }
  /// Entries held for the owner of `r`: its signer when signed, its owner field when not.
  [[nodiscard]] std::size_t held_for(const Record& r) const;
  /// Who owns `r` for quotas: a digest of its signer's certificate, or of its owner field.
  static NodeId owner_of(const Record& r);

 private:
  using Slot = std::pair<NodeId, std::string>;  // (key, dictionary key)
  using SlotView = std::pair<NodeId, std::string_view>;
  struct SlotLess {
    using is_transparent = void;
    static SlotView view(const Slot& s) { return {s.first, s.second}; }
    static SlotView view(const SlotView& s) { return s; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return view(a) < view(b);
    }
  };
  using Records = std::map<Slot, Record, SlotLess>;
  void index(Records::iterator it);
  void unindex(Records::iterator it);
  /// The first record whose key is past `key`.
  [[nodiscard]] Records::const_iterator after(NodeId key) const;
  void count(const Record& r, int delta);
  Records records_;
  std::unordered_map<NodeId, std::size_t, NodeIdHash> per_owner_;
  /// (expiry, the record's slot, whose address in records_ is stable) for every record.
  std::set<std::pair<std::int64_t, const Slot*>> by_expiry_;
};

}  // namespace p2psip::dht
