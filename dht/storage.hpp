// Records held by a peer: those it is responsible for and replicas of its predecessors'. Whether a
// record is primary is derived from the ring (key in (predecessor, self]), never stored.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "dht/messages.hpp"

namespace p2psip::dht {

class Storage {
 public:
  /// Stores or replaces a record. A record not newer than the one held (stored_at_us) is ignored
  /// (replicas arriving late must not roll a value back). Returns true when stored.
  bool put(const Record& r);
  [[nodiscard]] const Record* get(NodeId key) const;
  bool erase(NodeId key) { return records_.erase(key) > 0; }
  /// Drops records whose lifetime has run out at `now_us`; returns how many.
  std::size_t expire(std::int64_t now_us);
  /// The earliest expiry time, INT64_MAX when empty.
  [[nodiscard]] std::int64_t next_expiry_us() const;
  /// Records whose key lies in (from, to].
  [[nodiscard]] std::vector<Record> range(NodeId from, NodeId to) const;
  [[nodiscard]] std::vector<Record> all() const;
  [[nodiscard]] std::size_t size() const { return records_.size(); }

 private:
  std::map<NodeId, Record> records_;
};

}  // namespace p2psip::dht
