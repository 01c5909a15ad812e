#include "nat/ice_links.hpp"

#include <algorithm>

namespace p2psip::nat {

std::string_view link_state_name(LinkState s) {
  switch (s) {
    case LinkState::Gathering: return "gathering";
    case LinkState::Offered: return "offered";
    case LinkState::Answering: return "answering";
    case LinkState::Checking: return "checking";
    case LinkState::Up: return "up";
    case LinkState::Failed: return "failed";
  }
  return "failed";
}

IceLinks::IceLinks(IcePort& port, AttachTransport& overlay, Environment& env, Endpoint self, IceLinkConfig cfg)
    : port_(port), overlay_(overlay), env_(env), self_(self), cfg_(cfg), offer_rate_(cfg.offers_per_peer) {}

IceLinks::~IceLinks() {
  for (auto& [peer, l] : links_) close_session(l);
}

IceLinks::Link* IceLinks::by_session(IceSessionId id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

bool IceLinks::is_up(const Endpoint& peer) const {
  auto it = links_.find(peer);
  return it != links_.end() && it->second.st.state == LinkState::Up;
}

bool IceLinks::has_link(const Endpoint& peer) const {
  auto it = links_.find(peer);
  return it != links_.end() && it->second.st.state != LinkState::Failed;
}

// RFC 6940 §6.5.1.2 leaves crossing Attaches to ICE; here one of them must go, and both sides must
// agree which without a word: the Attach of the side with the greater address wins.
bool IceLinks::wins_glare(const Endpoint& peer) const {
  const auto key = [](const Endpoint& e) { return std::make_tuple(e.ip.v6, e.ip.bytes, e.port); };
  return key(self_) > key(peer);
}

bool IceLinks::make_room(Instant now) {
  if (by_id_.size() < cfg_.max_links) return true;
  Link* lru = nullptr;
  for (auto& [peer, l] : links_) {
    if (l.st.state == LinkState::Up && (!lru || l.last_used < lru->last_used)) lru = &l;
  }
  if (!lru) return false;
  env_.log(LogLevel::Info, "ice: closing the least used link (to " + lru->st.peer.host_port() + ") for a new one");
  ++stats_.closed_evicted;
  const Endpoint peer = lru->st.peer;
  close_session(*lru);
  erase(peer);
  overlay_.link_down(peer, now);
  return true;
}

bool IceLinks::open(Link& l, const Endpoint& peer, bool controlling, Instant now) {
  const IceSessionId id = next_id_++;
  l.id = id;
  l.st.peer = peer;
  l.st.initiated = controlling;
  l.st.since = now;
  l.st.local_type.reset();
  l.st.remote_type.reset();
  l.st.relayed = false;
  l.local = IceDescription{};
  l.have_credentials = l.gathered = l.described = false;
  l.started = now;
  l.gather_until = now + cfg_.gather_budget;
  l.deadline = now + cfg_.setup_timeout;
  l.retry_at = kInstantMax;
  l.last_used = now;
  by_id_.emplace(id, &l);
  if (!port_.open(id, controlling)) {
    env_.log(LogLevel::Warn, "ice: the agent opened no session for " + peer.host_port());
    by_id_.erase(id);
    l.id = 0;
    return false;
  }
  return true;
}

void IceLinks::close_session(Link& l) {
  if (l.id == 0) return;
  port_.close(l.id);
  by_id_.erase(l.id);
  l.id = 0;
}

bool IceLinks::hold(Link& l, std::string_view bytes) {
  if (l.queue.size() >= cfg_.queue_messages || l.queued_bytes + bytes.size() > cfg_.queue_bytes) {
    ++stats_.queue_dropped;
    return false;
  }
  l.queue.emplace_back(bytes);
  l.queued_bytes += bytes.size();
  return true;
}

void IceLinks::connect(const Endpoint& peer, Instant now) {
  auto it = links_.find(peer);
  if (it != links_.end()) {
    if (it->second.st.state != LinkState::Failed || now < it->second.retry_at) return;
  }
  if (!make_room(now)) return;
  Link& l = links_[peer];
  l.st.state = LinkState::Gathering;
  if (!open(l, peer, true, now)) fail(l, now, false);
  touch(l);
}

bool IceLinks::send(const Endpoint& peer, std::string_view bytes, Instant now) {
  auto it = links_.find(peer);
  if (it != links_.end() && it->second.st.state == LinkState::Up) {
    Link& l = it->second;
    l.last_used = now;
    ++stats_.sent;
    return port_.send(l.id, bytes);
  }
  if (it != links_.end() && it->second.st.state == LinkState::Failed && now < it->second.retry_at) return false;
  if (it == links_.end() || it->second.st.state == LinkState::Failed) {
    connect(peer, now);
    it = links_.find(peer);
    if (it == links_.end() || it->second.st.state == LinkState::Failed) return false;
  }
  return hold(it->second, bytes);
}

void IceLinks::offered(const Endpoint& peer, const IceDescription& offer, std::uint64_t token, Instant now) {
  if (auto wait = offer_rate_.take(peer, now)) {
    ++stats_.offers_refused_rate;
    if (offer_rate_.first_in(peer, now))
      env_.log(LogLevel::Warn, "ice: Attach from " + peer.host_port() + " over its rate: refused");
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(*wait).count() + 1;
    overlay_.refuse_attach(token, 503, static_cast<std::uint32_t>(s));
    return;
  }
  auto it = links_.find(peer);
  if (it != links_.end()) {
    Link& l = it->second;
    const bool ours_pending =
        l.st.initiated && (l.st.state == LinkState::Gathering || l.st.state == LinkState::Offered);
    if (ours_pending && wins_glare(peer)) {
      ++stats_.glare;
      overlay_.refuse_attach(token, 491, 0);
      return;
    }
    if (ours_pending) ++stats_.glare;
    // Theirs wins, or the peer lost the link we had (restarted, moved): a new session, the
    // messages held so far kept for it.
    close_session(l);
  } else if (by_id_.size() >= cfg_.max_links) {
    // Offers never push out links in use: a stream of strangers' Attaches must not cost the ring.
    ++stats_.offers_refused_full;
    overlay_.refuse_attach(token, 503, 30);
    return;
  }
  ++stats_.offers_taken;
  Link& l = links_[peer];
  l.st.state = LinkState::Answering;
  if (!open(l, peer, false, now)) {
    overlay_.refuse_attach(token, 503, 30);
    fail(l, now, false);
    return;
  }
  l.token = token;
  touch(l);
  port_.remote(l.id, offer);
}

void IceLinks::answered(IceSessionId id, const IceDescription& answer, Instant now) {
  Link* l = by_session(id);
  if (!l || l->st.state != LinkState::Offered) return;
  l->st.state = LinkState::Checking;
  l->st.since = now;
  port_.remote(id, answer);
}

void IceLinks::attach_failed(IceSessionId id, int status, std::uint32_t retry_after_s, Instant now) {
  Link* l = by_session(id);
  if (!l || l->st.state != LinkState::Offered) return;
  if (status == 491) return;  // glare: the peer's own Attach is on its way and will replace this session
  env_.log(LogLevel::Info, "ice: Attach to " + l->st.peer.host_port() + " failed (" + std::to_string(status) + ")");
  fail(*l, now, false);
  if (retry_after_s > 0) l->retry_at = std::max(l->retry_at, now + seconds(retry_after_s));
}

void IceLinks::forget(const Endpoint& peer, Instant now) {
  (void)now;
  auto it = links_.find(peer);
  if (it == links_.end()) return;
  close_session(it->second);
  stats_.queue_dropped += it->second.queue.size();
  links_.erase(it);
  ++changes_;
}

void IceLinks::local_credentials(IceSessionId id, const IceCredentials& c, Instant now) {
  Link* l = by_session(id);
  if (!l) return;
  l->local.credentials = c;
  l->have_credentials = true;
  maybe_describe(*l, now);
  touch(*l);
}

void IceLinks::local_candidate(IceSessionId id, const IceCandidate& c, Instant now) {
  Link* l = by_session(id);
  if (!l || l->described) return;  // later candidates are not trickled: peer-reflexive ones stand in
  if (l->local.candidates.size() < cfg_.limits.max_candidates) l->local.candidates.push_back(c);
  maybe_describe(*l, now);
  touch(*l);
}

void IceLinks::gathering_done(IceSessionId id, Instant now) {
  Link* l = by_session(id);
  if (!l) return;
  l->gathered = true;
  maybe_describe(*l, now);
  touch(*l);
}

void IceLinks::maybe_describe(Link& l, Instant now) {
  if (l.described || !l.have_credentials) return;
  if (l.st.state != LinkState::Gathering && l.st.state != LinkState::Answering) return;
  bool srflx = false, relay = false;
  for (const auto& c : l.local.candidates) {
    srflx = srflx || c.type == CandidateType::ServerReflexive;
    relay = relay || c.type == CandidateType::Relayed;
  }
  // With TURN the relayed candidate comes last (an Allocate takes two round trips, the STUN answer
  // one): once it is here, a server-reflexive one that is not here will not come (a public host's
  // equals its host candidate). Without TURN the server-reflexive one is the last worth waiting for.
  const bool enough = l.gathered || now >= l.gather_until || (cfg_.turn ? relay : srflx);
  if (!enough) return;
  l.described = true;
  l.local.end_of_candidates = l.gathered;
  if (l.st.state == LinkState::Gathering) {
    l.st.state = LinkState::Offered;
    ++stats_.attaches_sent;
    if (!overlay_.send_attach(l.id, l.st.peer, l.local, now)) fail(l, now, false);
  } else {
    l.st.state = LinkState::Checking;
    overlay_.answer_attach(*l.token, l.local);
    l.token.reset();
  }
}

void IceLinks::connected(IceSessionId id, CandidateType local, CandidateType remote, Instant now) {
  Link* l = by_session(id);
  if (!l) return;
  if (l->st.state == LinkState::Up) {
    // The agent moved the link to a better pair (a direct one succeeded after a relayed one).
    if (l->st.local_type == local && l->st.remote_type == remote) return;
    ++stats_.pair_changes;
    l->st.local_type = local;
    l->st.remote_type = remote;
    l->st.relayed = local == CandidateType::Relayed || remote == CandidateType::Relayed;
    env_.log(LogLevel::Info, "ice: link to " + l->st.peer.host_port() + " now " +
                                 std::string(candidate_type_name(local)) + " - " +
                                 std::string(candidate_type_name(remote)));
    return;
  }
  if (l->st.state == LinkState::Answering) {
    // Checks can succeed before the answer went (the offerer's checks arrive first): answer now.
    l->described = false;
    l->gathered = true;
    maybe_describe(*l, now);
  }
  l->st.state = LinkState::Up;
  l->st.local_type = local;
  l->st.remote_type = remote;
  l->st.relayed = local == CandidateType::Relayed || remote == CandidateType::Relayed;
  l->st.setup = now - l->started;
  l->st.since = now;
  l->st.failures = 0;
  l->deadline = kInstantMax;
  l->last_used = now;
  touch(*l);
  ++(l->st.relayed ? stats_.up_relayed : stats_.up_direct);
  env_.log(LogLevel::Info, "ice: link to " + l->st.peer.host_port() + " up (" +
                               std::string(candidate_type_name(local)) + " - " +
                               std::string(candidate_type_name(remote)) + ")");
  auto queue = std::move(l->queue);
  l->queue.clear();
  l->queued_bytes = 0;
  for (const auto& m : queue) {
    ++stats_.sent;
    port_.send(id, m);
  }
  overlay_.link_up(l->st.peer, now);
}

void IceLinks::failed(IceSessionId id, Instant now) {
  Link* l = by_session(id);
  if (!l) return;
  if (l->st.state == LinkState::Up) {
    ++stats_.lost;
    env_.log(LogLevel::Info, "ice: link to " + l->st.peer.host_port() + " lost");
    const Endpoint peer = l->st.peer;
    close_session(*l);
    erase(peer);  // attached again at the next message, without a back-off
    overlay_.link_down(peer, now);
    return;
  }
  fail(*l, now, true);
}

void IceLinks::fail(Link& l, Instant now, bool checks) {
  ++(checks ? stats_.failed_checks : stats_.failed_attach);
  if (l.token) {
    overlay_.refuse_attach(*l.token, 503, 5);
    l.token.reset();
  }
  close_session(l);
  stats_.queue_dropped += l.queue.size();
  l.queue.clear();
  l.queued_bytes = 0;
  l.st.state = LinkState::Failed;
  l.st.since = now;
  ++l.st.failures;
  Duration wait = cfg_.retry_min;
  for (std::uint32_t i = 1; i < l.st.failures && wait < cfg_.retry_max; ++i) wait *= 2;
  l.retry_at = now + std::min(wait, cfg_.retry_max);
  l.deadline = l.gather_until = kInstantMax;
  ++changes_;
  touch(l);
  env_.log(LogLevel::Info,
           "ice: no link to " + l.st.peer.host_port() + (checks ? " (checks failed)" : " (Attach failed)"));
  overlay_.link_down(l.st.peer, now);
}

std::optional<Endpoint> IceLinks::received(IceSessionId id, Instant now) {
  Link* l = by_session(id);
  if (!l) return std::nullopt;
  ++stats_.received;
  l->last_used = now;
  return l->st.peer;
}

Instant IceLinks::link_wakeup(const Link& l) const {
  switch (l.st.state) {
    case LinkState::Gathering:
    case LinkState::Answering:
      // Without credentials nothing can go, whatever the budget: their coming describes the link.
      return std::min(l.described || !l.have_credentials ? kInstantMax : l.gather_until, l.deadline);
    case LinkState::Offered:
    case LinkState::Checking: return l.deadline;
    case LinkState::Up: return l.last_used + cfg_.idle_timeout;
    case LinkState::Failed: return l.retry_at + cfg_.retry_max;  // then forgotten, failures and all
  }
  return kInstantMax;
}

void IceLinks::advance(Instant now) {
  // What is due is gathered first: failing a link tells the overlay, which may send (and so add a
  // link) before this returns, and the table must not change under a walk through it.
  std::vector<Endpoint> due;
  for (const auto& [peer, l] : links_) {
    if (link_wakeup(l) <= now) due.push_back(peer);
  }
  for (const auto& peer : due) {
    auto it = links_.find(peer);
    if (it == links_.end() || link_wakeup(it->second) > now) continue;
    Link& l = it->second;
    switch (l.st.state) {
      case LinkState::Gathering:
      case LinkState::Answering:
        if (now >= l.deadline) {
          fail(l, now, true);
        } else {
          maybe_describe(l, now);
        }
        break;
      case LinkState::Offered: fail(l, now, false); break;
      case LinkState::Checking: fail(l, now, true); break;
      case LinkState::Up:
        ++stats_.closed_idle;
        close_session(l);
        links_.erase(it);
        ++changes_;
        break;
      case LinkState::Failed:
        links_.erase(it);
        ++changes_;
        break;
    }
  }
  wake_ = kInstantMax;
  for (const auto& [peer, l] : links_) wake_ = std::min(wake_, link_wakeup(l));
}

std::vector<IceLinkStatus> IceLinks::status() const {
  std::vector<IceLinkStatus> out;
  out.reserve(links_.size());
  for (const auto& [peer, l] : links_) out.push_back(l.st);
  std::sort(out.begin(), out.end(),
            [](const IceLinkStatus& a, const IceLinkStatus& b) { return a.peer.host_port() < b.peer.host_port(); });
  return out;
}

}  // namespace p2psip::nat
