#include "dht/routing_table.hpp"

#include <algorithm>
#include <bit>
#include <string>

namespace p2psip::dht {

bool RoutingTable::responsible_for(NodeId key, bool final_hop, Excluded excluded) const {
  if (alone()) return true;
  if (!excluded.empty() && is_excluded(excluded, self_.id)) return false;
  if (key == self_.id) return true;
  for (const auto& p : predecessors_) {
    if (!is_excluded(excluded, p.id)) return in_open_closed(key, p.id, self_.id);
  }
  return final_hop;
}

std::optional<double> RoutingTable::mean_gap() const {
  if (successors_.size() < 2) return std::nullopt;
  return as_double(distance(self_.id, successors_.back().id)) / static_cast<double>(successors_.size());
}

std::optional<Peer> RoutingTable::predecessor(Excluded excluded) const {
  for (const auto& p : predecessors_) {
    if (!is_excluded(excluded, p.id)) return p;
  }
  return std::nullopt;
}

const Peer& RoutingTable::successor(Excluded excluded) const {
  for (const auto& s : successors_) {
    if (!is_excluded(excluded, s.id)) return s;
  }
  return self_;
}

std::optional<Peer> RoutingTable::finger(int i) const {
  auto it = std::lower_bound(fingers_.begin(), fingers_.end(), i, [](const auto& f, int k) { return f.first < k; });
  if (it == fingers_.end() || it->first != i) return std::nullopt;
  return it->second;
}

void RoutingTable::set_finger(int i, std::optional<Peer> p) {
  if (i < 0 || i >= kFingers) return;
  auto it = std::lower_bound(fingers_.begin(), fingers_.end(), i, [](const auto& f, int k) { return f.first < k; });
  const bool present = it != fingers_.end() && it->first == i;
  if (!p) {
    if (present) fingers_.erase(it);
    return;
  }
  if (present) {
    it->second = std::move(*p);
  } else {
    fingers_.insert(it, {static_cast<std::uint8_t>(i), std::move(*p)});
  }
}

bool RoutingTable::offer_finger(const Peer& p) {
  if (p.id == self_.id || alone() || in_open_closed(p.id, self_.id, successor().id)) return false;
  const NodeId d = distance(self_.id, p.id);
  const int i = d.hi != 0 ? 127 - std::countl_zero(d.hi) : 63 - std::countl_zero(d.lo);
  const NodeId start = self_.id.plus_pow2(i);
  const auto current = finger(i);
  if (current && (current->id == p.id || distance(start, current->id) <= distance(start, p.id))) return false;
  set_finger(i, p);
  return true;
}

void RoutingTable::clear_fingers_below(int i) {
  std::erase_if(fingers_, [&](const auto& f) { return f.first < i; });
}

bool RoutingTable::successor_responsible(NodeId key, Excluded excluded) const {
  const Peer& s = excluded.empty() ? successor() : successor(excluded);
  return !alone() && s.id != self_.id && in_open_closed(key, self_.id, s.id);
}

Peer RoutingTable::next_hop(NodeId key, bool whole_successor_list, Excluded excluded) const {
  // Closest preceding node (Chord's closest_preceding_finger), over fingers and successors.
  const Peer* best = nullptr;
  NodeId best_distance;
  auto offer = [&](const Peer& p) {
    if (p.id == self_.id || !in_open_open(p.id, self_.id, key)) return;
    if (!excluded.empty() && is_excluded(excluded, p.id)) return;
    NodeId d = distance(p.id, key);
    if (best == nullptr || d < best_distance) {
      best = &p;
      best_distance = d;
    }
  };
  for (const auto& f : fingers_) offer(f.second);
  for (const auto& s : successors_) {
    offer(s);
    if (!whole_successor_list && !is_excluded(excluded, s.id)) break;
  }
  return best ? *best : successor(excluded);
}

namespace {
/// `first`, then `rest`, without `self` or duplicates, at most `max`, ordered by `dist` (nearest first).
template <class Distance>
std::vector<Peer> neighbour_list(const Peer& self, std::size_t max, const Peer& first, const std::vector<Peer>& rest,
                                 Distance dist) {
  std::vector<Peer> list;
  auto add = [&](const Peer& p) {
    if (p.id == self.id || list.size() >= max) return;
    if (std::any_of(list.begin(), list.end(), [&](const Peer& q) { return q.id == p.id; })) return;
    list.push_back(p);
  };
  add(first);
  for (const auto& p : rest) add(p);
  // A peer's list may lag behind ours: keep ring order from self.
  std::stable_sort(list.begin(), list.end(), [&](const Peer& x, const Peer& y) { return dist(x.id) < dist(y.id); });
  return list;
}
}  // namespace

void RoutingTable::set_successors(const Peer& first, const std::vector<Peer>& rest) {
  successors_ = neighbour_list(self_, max_successors_, first, rest, [&](NodeId id) { return distance(self_.id, id); });
}

void RoutingTable::set_predecessors(const Peer& first, const std::vector<Peer>& rest) {
  predecessors_ =
      neighbour_list(self_, max_predecessors_, first, rest, [&](NodeId id) { return distance(id, self_.id); });
}

bool RoutingTable::offer_predecessor(const Peer& p) {
  if (p.id == self_.id) return false;
  auto same = std::find_if(predecessors_.begin(), predecessors_.end(), [&](const Peer& q) { return q.id == p.id; });
  if (same != predecessors_.end()) {
    *same = p;  // the same peer, maybe at a new address
    return false;
  }
  bool nearer = predecessors_.empty() || in_open_open(p.id, predecessors_.front().id, self_.id);
  if (nearer || predecessors_.size() < max_predecessors_ || in_open_open(p.id, predecessors_.back().id, self_.id)) {
    std::vector<Peer> rest = predecessors_;
    set_predecessors(p, rest);
  }
  return nearer;
}

bool RoutingTable::consider(const Peer& p) {
  if (p.id == self_.id) return false;
  if (alone() || in_open_open(p.id, self_.id, successor().id)) {
    std::vector<Peer> rest = successors_;
    set_successors(p, rest);
    return true;
  }
  // Within the successor list's span: insert in order.
  if (successors_.size() < max_successors_ || in_open_open(p.id, self_.id, successors_.back().id)) {
    if (std::none_of(successors_.begin(), successors_.end(), [&](const Peer& q) { return q.id == p.id; })) {
      std::vector<Peer> rest = successors_;
      rest.push_back(p);
      set_successors(successors_.front(), rest);
    }
  }
  return false;
}

bool RoutingTable::remove(NodeId id) {
  bool was_first = !successors_.empty() && successors_.front().id == id;
  std::erase_if(successors_, [&](const Peer& p) { return p.id == id; });
  std::erase_if(predecessors_, [&](const Peer& p) { return p.id == id; });  // the next one takes over
  std::erase_if(fingers_, [&](const auto& f) { return f.second.id == id; });
  return was_first;
}

std::size_t RoutingTable::distinct_fingers() const {
  std::vector<NodeId> ids;
  for (const auto& f : fingers_) {
    if (std::find(ids.begin(), ids.end(), f.second.id) == ids.end()) ids.push_back(f.second.id);
  }
  return ids.size();
}

std::vector<Peer> RoutingTable::known_peers() const {
  std::vector<Peer> out;
  auto add = [&](const Peer& p) {
    if (p.id != self_.id && std::none_of(out.begin(), out.end(), [&](const Peer& q) { return q.id == p.id; })) {
      out.push_back(p);
    }
  };
  for (const auto& s : successors_) add(s);
  for (const auto& p : predecessors_) add(p);
  for (const auto& f : fingers_) add(f.second);
  return out;
}

std::optional<Peer> RoutingTable::find(NodeId id) const {
  auto same = [&](const Peer& p) { return p.id == id; };
  if (auto it = std::find_if(successors_.begin(), successors_.end(), same); it != successors_.end()) return *it;
  if (auto it = std::find_if(predecessors_.begin(), predecessors_.end(), same); it != predecessors_.end()) return *it;
  for (const auto& f : fingers_) {
    if (f.second.id == id) return f.second;
  }
  return std::nullopt;
}

std::string RoutingTable::violation() const {
  auto check = [&](const std::vector<Peer>& list, std::size_t max, const char* name, auto dist) -> std::string {
    if (list.size() > max) return std::string(name) + " list longer than " + std::to_string(max);
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].id == self_.id) return std::string(name) + " list holds self";
      if (i > 0 && !(dist(list[i - 1].id) < dist(list[i].id))) {
        return std::string(name) + " " + std::to_string(i) + " (" + list[i].id.short_hex() + ") is not past " +
               list[i - 1].id.short_hex() + " in ring order";
      }
    }
    return {};
  };
  if (auto v = check(successors_, max_successors_, "successor", [&](NodeId id) { return distance(self_.id, id); });
      !v.empty())
    return v;
  if (auto v =
          check(predecessors_, max_predecessors_, "predecessor", [&](NodeId id) { return distance(id, self_.id); });
      !v.empty())
    return v;
  for (std::size_t i = 0; i < fingers_.size(); ++i) {
    if (fingers_[i].second.id == self_.id) return "finger " + std::to_string(fingers_[i].first) + " is self";
    if (i > 0 && fingers_[i - 1].first >= fingers_[i].first) return "fingers out of index order";
  }
  return {};
}

}  // namespace p2psip::dht
