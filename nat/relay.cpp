#include "nat/relay.hpp"

#include <algorithm>

namespace p2psip::nat {

RelayTable::Admission RelayTable::admit(const std::string& client, const std::string& instance, std::uint32_t reg_id,
                                        const Endpoint& source, std::uint32_t expires_s, const std::string& token,
                                        Instant now) {
  expire(now);
  Admission a;
  auto same = std::find_if(flows_.begin(), flows_.end(), [&](const ClientFlow& f) {
    return f.client == client && f.instance == instance && f.reg_id == reg_id;
  });
  if (expires_s == 0) {
    // RFC 3261 §10.2.2: expires 0 removes the binding.
    if (same != flows_.end()) {
      flows_.erase(same);
      ++stats_.removed;
    }
    a.accepted = true;
    return a;
  }
  const std::uint32_t granted = std::clamp(expires_s, cfg_.min_expires, cfg_.max_expires);
  if (same != flows_.end()) {
    if (!(same->flow == source)) ++stats_.replaced;  // RFC 5626 §6: a new flow replaces the old
    same->flow = source;
    same->expires = now + seconds(granted);
    same->registered = now;
    ++stats_.refreshes;
    a.accepted = true;
    a.expires_s = granted;
    a.flow = &*same;
    return a;
  }
  const std::size_t held = static_cast<std::size_t>(
      std::count_if(flows_.begin(), flows_.end(), [&](const ClientFlow& f) { return f.client == client; }));
  if ((held == 0 && clients() >= cfg_.max_clients) || held >= cfg_.flows_per_client) {
    ++stats_.refused_full;
    a.retry_after_s = cfg_.retry_after_s;
    return a;
  }
  flows_.push_back(ClientFlow{client, instance, reg_id, source, token, now + seconds(granted), now});
  ++stats_.registrations;
  a.accepted = true;
  a.expires_s = granted;
  a.flow = &flows_.back();
  return a;
}

std::vector<const ClientFlow*> RelayTable::flows_of(const std::string& client) const {
  std::vector<const ClientFlow*> out;
  for (const auto& f : flows_) {
    if (f.client == client) out.push_back(&f);
  }
  std::sort(out.begin(), out.end(),
            [](const ClientFlow* a, const ClientFlow* b) { return a->registered > b->registered; });
  return out;
}

const ClientFlow* RelayTable::by_token(const std::string& token) const {
  for (const auto& f : flows_) {
    if (f.token == token) return &f;
  }
  return nullptr;
}

const ClientFlow* RelayTable::by_source(const Endpoint& source) const {
  for (const auto& f : flows_) {
    if (f.flow.ip == source.ip && f.flow.port == source.port) return &f;
  }
  return nullptr;
}

void RelayTable::expire(Instant now) {
  const auto n = flows_.size();
  flows_.erase(std::remove_if(flows_.begin(), flows_.end(), [&](const ClientFlow& f) { return f.expires <= now; }),
               flows_.end());
  stats_.expired += n - flows_.size();
}

Instant RelayTable::next_expiry() const {
  Instant next = kInstantMax;
  for (const auto& f : flows_) next = std::min(next, f.expires);
  return next;
}

std::size_t RelayTable::clients() const {
  std::vector<const std::string*> seen;
  for (const auto& f : flows_) {
    if (std::none_of(seen.begin(), seen.end(), [&](const std::string* s) { return *s == f.client; })) {
      seen.push_back(&f.client);
    }
  }
  return seen.size();
}

}  // namespace p2psip::nat
