#include "dht/storage.hpp"

#include <limits>

namespace p2psip::dht {

namespace {
std::int64_t expiry(const Record& r) {
  return r.stored_at_us + std::int64_t{r.lifetime_s} * 1000000;
}
}  // namespace

bool Storage::put(const Record& r) {
  // One descent of the tree: where the slot is, or where it would go.
  const SlotView slot(r.key, r.dkey);
  auto it = records_.lower_bound(slot);
  const bool held = it != records_.end() && !SlotLess{}(slot, it->first);
  if (held && it->second.stored_at_us > r.stored_at_us) return false;
  if (r.lifetime_s == 0) {
    if (held) {
      unindex(it);
      count(it->second, -1);
      records_.erase(it);
    }
    return true;
  }
  if (held) {
    unindex(it);
    count(it->second, -1);
    it->second = r;
  } else {
    it = records_.emplace_hint(it, Slot{r.key, r.dkey}, r);
  }
  count(it->second, +1);
  index(it);
  return true;
}

NodeId Storage::owner_of(const Record& r) {
  return NodeId::hash(r.signer.empty() ? "owner:" + r.owner : r.signer);
}

void Storage::count(const Record& r, int delta) {
  const NodeId o = owner_of(r);
  std::size_t& n = per_owner_[o];
  n += static_cast<std::size_t>(delta);  // wraps back for -1: counts never go below zero
  if (n == 0) per_owner_.erase(o);
}

std::size_t Storage::held_for(const Record& r) const {
  auto it = per_owner_.find(owner_of(r));
  return it == per_owner_.end() ? 0 : it->second;
}

void Storage::index(Records::iterator it) {
  by_expiry_.emplace(expiry(it->second), &it->first);
}

void Storage::unindex(Records::iterator it) {
  by_expiry_.erase({expiry(it->second), &it->first});
}

const Record* Storage::get(NodeId key, std::string_view dkey) const {
  auto it = records_.find(SlotView(key, dkey));
  return it == records_.end() ? nullptr : &it->second;
}

std::vector<Record> Storage::entries(NodeId key, Instant now) const {
  const std::int64_t now_us = now.time_since_epoch().count();
  std::vector<Record> out;
  for (auto it = records_.lower_bound(SlotView(key, {})); it != records_.end() && it->first.first == key; ++it) {
    if (expiry(it->second) > now_us) out.push_back(it->second);
  }
  return out;
}

std::size_t Storage::expire(Instant now) {
  const std::int64_t now_us = now.time_since_epoch().count();
  std::size_t dropped = 0;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_us) {
    const Slot& slot = *by_expiry_.begin()->second;
    by_expiry_.erase(by_expiry_.begin());
    auto it = records_.find(SlotView(slot.first, slot.second));
    count(it->second, -1);
    records_.erase(it);
    ++dropped;
  }
  return dropped;
}

Instant Storage::next_expiry() const {
  return by_expiry_.empty() ? kInstantMax : Instant(Duration(by_expiry_.begin()->first));
}

Storage::Records::const_iterator Storage::after(NodeId key) const {
  auto it = records_.lower_bound(SlotView(key, {}));
  while (it != records_.end() && it->first.first == key) ++it;
  return it;
}

std::vector<Record> Storage::range(NodeId from, NodeId to) const {
  if (from == to) return all();
  // The map is ordered by key: (from, to] is one run of it, or two when it wraps past zero (given
  // in key order, as a scan would).
  std::vector<Record> out;
  auto copy = [&](Records::const_iterator b, Records::const_iterator e) {
    for (; b != e; ++b) out.push_back(b->second);
  };
  if (from < to) {
    copy(after(from), after(to));
  } else {
    copy(records_.begin(), after(to));
    copy(after(from), records_.end());
  }
  return out;
}

std::vector<Record> Storage::nearest(NodeId from, std::string_view prefix, std::size_t max, Instant now) const {
  std::vector<Record> out;
  const std::int64_t now_us = now.time_since_epoch().count();
  auto take = [&](Records::const_iterator b, Records::const_iterator e) {
    for (; b != e && out.size() < max; ++b) {
      const Record& r = b->second;
      if (expiry(r) > now_us && std::string_view(r.name).substr(0, prefix.size()) == prefix) out.push_back(r);
    }
  };
  const auto start = after(from);
  take(start, records_.end());
  take(records_.begin(), start);
  return out;
}

std::vector<Record> Storage::all() const {
  std::vector<Record> out;
  out.reserve(records_.size());
  for (const auto& [k, r] : records_) out.push_back(r);
  return out;
}

}  // namespace p2psip::dht
