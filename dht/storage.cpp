#include "dht/storage.hpp"

#include <limits>

namespace p2psip::dht {

namespace {
std::int64_t expiry(const Record& r) {
  return r.stored_at_us + std::int64_t{r.lifetime_s} * 1000000;
}
}  // namespace

bool Storage::put(const Record& r) {
  auto it = records_.find(SlotView(r.key, r.dkey));
  if (it != records_.end() && it->second.stored_at_us > r.stored_at_us) return false;
  if (r.lifetime_s == 0) {
    if (it != records_.end()) records_.erase(it);
    return true;
  }
  if (it != records_.end()) {
    it->second = r;
  } else {
    records_.emplace(Slot{r.key, r.dkey}, r);
  }
  return true;
}

const Record* Storage::get(NodeId key, std::string_view dkey) const {
  auto it = records_.find(SlotView(key, dkey));
  return it == records_.end() ? nullptr : &it->second;
}

std::vector<Record> Storage::entries(NodeId key, std::int64_t now_us) const {
  std::vector<Record> out;
  for (auto it = records_.lower_bound(SlotView(key, {})); it != records_.end() && it->first.first == key; ++it) {
    if (expiry(it->second) > now_us) out.push_back(it->second);
  }
  return out;
}

std::size_t Storage::expire(std::int64_t now_us) {
  return std::erase_if(records_, [&](const auto& kv) { return expiry(kv.second) <= now_us; });
}

std::int64_t Storage::next_expiry_us() const {
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  for (const auto& [k, r] : records_) next = std::min(next, expiry(r));
  return next;
}

std::vector<Record> Storage::range(NodeId from, NodeId to) const {
  std::vector<Record> out;
  for (const auto& [slot, r] : records_) {
    if (in_open_closed(slot.first, from, to)) out.push_back(r);
  }
  return out;
}

std::vector<Record> Storage::all() const {
  std::vector<Record> out;
  out.reserve(records_.size());
  for (const auto& [k, r] : records_) out.push_back(r);
  return out;
}

}  // namespace p2psip::dht
