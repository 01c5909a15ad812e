#include "nat/reachability.hpp"

#include <algorithm>

namespace p2psip::nat {

std::string_view nat_class_name(NatClass c) {
  switch (c) {
    case NatClass::Unknown: return "unknown";
    case NatClass::Public: return "public";
    case NatClass::Cone: return "cone";
    case NatClass::Symmetric: return "symmetric";
    case NatClass::UdpBlocked: return "udp-blocked";
  }
  return "unknown";
}

Reachability::Reachability(StunClient& client, Endpoint local, ReachabilityConfig cfg)
    : client_(client), local_(local), cfg_(cfg), backoff_(cfg.retry) {
  if (cfg_.targets == 0) cfg_.targets = 1;
}

void Reachability::retry_later(Instant now) {
  next_check_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, std::max(cfg_.recheck, cfg_.retry));
}

Reachability::~Reachability() {
  for (const auto& id : ids_) client_.cancel(id);
}

void Reachability::check(const std::vector<Endpoint>& candidates, Instant now) {
  if (checking_) return;
  const std::size_t want = cfg_.targets + cfg_.spare;
  std::vector<Endpoint> chosen;
  const auto is_silent = [&](const Endpoint& c) {
    return std::find(silent_.begin(), silent_.end(), c.ip) != silent_.end();
  };
  for (const bool second_pass : {false, true}) {
    for (const auto& c : candidates) {
      if (chosen.size() >= want) break;
      if (c.ip == local_.ip || is_silent(c) != second_pass) continue;  // our own host sees the local address
      const bool seen = std::any_of(chosen.begin(), chosen.end(), [&](const Endpoint& e) { return e.ip == c.ip; });
      if (!seen) chosen.push_back(c);
    }
  }
  const std::uint32_t gen = ++generation_;
  pending_.clear();
  done_.clear();
  ids_.clear();
  waiting_ = 0;
  answers_ = 0;
  for (const auto& c : chosen) {
    Endpoint to = c;
    to.transport = Transport::Udp;  // the mapping that matters is the overlay's UDP socket's
    const std::size_t slot = pending_.size();
    auto r = client_.binding(to, now, [this, gen, slot](const StunOutcome& o) { answered(gen, slot, o); });
    if (r) {
      pending_.push_back(Observation{to, std::nullopt, {}});
      done_.push_back(false);
      ids_.push_back(*r);
      ++waiting_;
    }
  }
  if (waiting_ == 0) {
    // Nobody to ask (or every send refused at once): no verdict; ask again later.
    pending_.clear();
    done_.clear();
    retry_later(now);
    return;
  }
  checking_ = true;
  status_.checking = true;
}

void Reachability::answered(std::uint32_t generation, std::size_t slot, const StunOutcome& o) {
  if (generation != generation_ || !checking_ || slot >= pending_.size() || done_[slot]) return;
  done_[slot] = true;
  if (o.kind == StunOutcome::Kind::Success && o.mapped) {
    pending_[slot].mapped = o.mapped;
    pending_[slot].rtt = o.rtt;
    ++answers_;
  }
  ids_.erase(std::remove(ids_.begin(), ids_.end(), o.id), ids_.end());
  --waiting_;
  if (waiting_ == 0 || answers_ >= cfg_.targets) conclude(o.at);
}

void Reachability::conclude(Instant now) {
  // Enough answers: those still asked are not waited for (and not reported).
  for (const auto& id : ids_) client_.cancel(id);
  ids_.clear();
  std::vector<Observation> finished;
  silent_.clear();
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (!done_[i]) continue;
    if (!pending_[i].mapped && silent_.size() < 16) silent_.push_back(pending_[i].peer.ip);
    finished.push_back(pending_[i]);
  }
  pending_ = std::move(finished);
  done_.clear();
  waiting_ = 0;
  checking_ = false;
  status_.checking = false;
  ++status_.checks;
  const NatClass verdict = classify(local_, pending_, cfg_.targets);
  if (verdict != status_.nat_class) ++status_.changes;
  status_.nat_class = verdict;
  status_.reflexive.reset();
  for (const auto& o : pending_) {
    if (o.mapped) {
      status_.reflexive = o.mapped;
      break;
    }
  }
  std::size_t answers = 0;
  for (const auto& o : pending_) answers += o.mapped ? 1 : 0;
  status_.observations = std::move(pending_);
  pending_.clear();
  // A verdict that rests on fewer peers than wanted is checked again soon, when more may be known.
  const bool settled = verdict != NatClass::Unknown &&
                       (answers >= cfg_.targets || verdict == NatClass::Public || verdict == NatClass::Symmetric);
  if (settled) {
    next_check_ = now + cfg_.recheck;
    backoff_ = cfg_.retry;
  } else {
    retry_later(now);
  }
}

void Reachability::address_changed(const Endpoint& local, Instant now) {
  for (const auto& id : ids_) client_.cancel(id);
  ids_.clear();
  pending_.clear();
  done_.clear();
  silent_.clear();
  waiting_ = 0;
  answers_ = 0;
  ++generation_;
  checking_ = false;
  local_ = local;
  status_.checking = false;
  status_.nat_class = NatClass::Unknown;
  status_.reflexive.reset();
  status_.observations.clear();
  next_check_ = now;
  backoff_ = cfg_.retry;
}

NatClass Reachability::classify(const Endpoint& local, const std::vector<Observation>& answers, std::size_t wanted) {
  std::vector<Endpoint> mapped;
  for (const auto& o : answers) {
    if (o.mapped) mapped.push_back(*o.mapped);
  }
  if (answers.empty()) return NatClass::Unknown;
  if (mapped.empty()) return NatClass::UdpBlocked;
  const auto same = [](const Endpoint& a, const Endpoint& b) { return a.ip == b.ip && a.port == b.port; };
  const bool all_alike =
      std::all_of(mapped.begin(), mapped.end(), [&](const Endpoint& e) { return same(e, mapped[0]); });
  // RFC 4787 §4.1: a mapping that differs by destination is address- or address-and-port-dependent.
  if (!all_alike) return NatClass::Symmetric;
  if (same(mapped[0], local)) return NatClass::Public;
  // One peer's answer shows a NAT but not how it maps; two or more that agree show it is
  // endpoint-independent.
  return mapped.size() >= std::min<std::size_t>(2, wanted) ? NatClass::Cone : NatClass::Unknown;
}

}  // namespace p2psip::nat
