#include "node/peer/peer.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <unordered_map>

#include "nat/ice.hpp"
#include "node/overlay/peer_auth.hpp"
#include "node/proxy/registration.hpp"
#include "security/attach_proof.hpp"
#include "security/certificate_cache.hpp"

namespace p2psip::peer {

struct Peer::Guard {
  Guard(const PeerSecurity& s, Environment& env)
      : crypto(*s.crypto),
        development(s.development_users),
        enrolled_users(s.users.size()),
        writer{s.self.key, s.self.cert.der(), s.crypto} {
    // One cache of checked certificates for records and messages alike: a peer's certificate
    // checked for its messages is the one its node record is signed with.
    auto certificates = std::make_shared<security::CertificateCache>(s.trust, s.certificate_cache);
    policy = std::make_unique<security::RecordPolicy>(certificates, crypto, env);
    if (s.sign_messages) {
      auth = std::make_unique<overlay::PeerAuthenticator>(s.self.key, s.self.cert, certificates, crypto, env);
    }
  }
  const security::CryptoProvider& crypto;
  bool development;
  std::size_t enrolled_users;
  security::Writer writer;  ///< the node's own: records put by its application
  std::unique_ptr<security::RecordPolicy> policy;
  std::unique_ptr<overlay::PeerAuthenticator> auth;
  std::unique_ptr<security::UserIdentities> users;
};

namespace {
dht::Peer self_of(const PeerConfig& c) {
  // With an identity the place on the ring follows from the key (docs/SECURITY.md).
  if (c.security) return dht::Peer{*c.security->self.cert.info().node_id, c.address};
  return dht::Peer{c.id, c.address};
}
}  // namespace

/// The phone face of a peer that serves no phones (a relay peer's proxy, which only carries its
/// clients' calls): nothing is ever sent on it.
class Peer::NoPhones : public Environment {
 public:
  explicit NoPhones(Environment& env) : env_(env) {}
  bool send(const Endpoint&, std::string_view) override { return false; }
  std::uint64_t random() override { return env_.random(); }
  std::uint64_t secure_random() override { return env_.secure_random(); }
  [[nodiscard]] WallTime wall_time(Instant now) const override { return env_.wall_time(now); }
  void log(LogLevel level, std::string_view text) override { env_.log(level, text); }

 private:
  Environment& env_;
};

/// The overlay's environment for a peer with ICE links: what goes to a peer reached by Attach (or
/// one a link is up to) goes over the link; everything else, and everything until the links
/// begin, goes as the driver sends it.
class Peer::LinkedEnv : public Environment {
 public:
  explicit LinkedEnv(Environment& env) : env_(env) {}
  bool send(const Endpoint& to, std::string_view bytes) override;
  std::uint64_t random() override { return env_.random(); }
  std::uint64_t secure_random() override { return env_.secure_random(); }
  [[nodiscard]] WallTime wall_time(Instant now) const override { return env_.wall_time(now); }
  void log(LogLevel level, std::string_view text) override { env_.log(level, text); }
  Links* links = nullptr;

 private:
  Environment& env_;
};

/// The ICE side of a peer: its IceLinks, the Attaches they send (routed by the Chord core to the
/// peer's Node-ID) and answer (as the AttachHandler), and which peers are reached by Attach. The
/// links and the overlay never call each other directly: each hands the other work through
/// `later`, which the peer runs once the call that queued it has returned (IceLinks's calls into
/// the overlay may send, and a send may open a link).
class Peer::Links : public nat::AttachTransport, public dht::AttachHandler, public dht::PeerLinks {
 public:
  Links(Peer& peer, nat::IcePort& port, Environment& env, Endpoint self, nat::IceLinkConfig cfg)
      : peer_(peer), env_(env), ice(port, *this, env, self, cfg), limits_(cfg.limits) {}

  /// LinkedEnv::send for a UDP destination.
  bool send(const Endpoint& to, std::string_view bytes) {
    const nat::LinkState* link = ice.state_of(to);
    if (link != nullptr && *link == nat::LinkState::Up) return ice.send(to, bytes, now);
    // Most sends (to public peers, without a link) end here, before any look at the bytes.
    if ((link == nullptr || *link == nat::LinkState::Failed) && !ids_.contains(to)) return env_.send(to, bytes);
    // A response goes back the way its request came: a request that came over a link finds it up,
    // and one that came straight from a NATed peer opened that peer's NAT to us. An Attach never
    // waits for the link it sets up (the Chord core routes it to a peer it reaches now, or, with
    // nobody nearer, straight to its target, whose NAT may be open to us).
    if (bytes.starts_with("SIP/2.0 ") || bytes.find("\r\nDHT-Op: attach\r\n") != std::string_view::npos) {
      return env_.send(to, bytes);
    }
    return ice.send(to, bytes, now);
  }

  // dht::PeerLinks
  [[nodiscard]] bool reachable(const dht::Peer& p) const override { return !p.attach || ice.is_up(p.addr); }
  void sending_to(const dht::Peer& p) override { learn(p); }
  void failed(const dht::Peer& p) override {
    later_.push_back([this, addr = p.addr](Instant at) {
      if (!ice.is_up(addr)) return;  // one being set up has its own verdict coming
      env_.log(LogLevel::Info, "ice: link to " + addr.host_port() + " closed: its peer did not answer over it");
      ice.forget(addr, at);
    });
  }
  void learn(const dht::Peer& p) {
    if (ids_.size() >= kMaxKnown && !ids_.contains(p.addr)) ids_.clear();  // bounded; relearned as sent to
    ids_[p.addr] = p.id;
  }

  // nat::AttachTransport
  bool send_attach(nat::IceSessionId id, const Endpoint& to, const nat::IceDescription& offer, Instant) override {
    auto known = ids_.find(to);
    if (known == ids_.end()) return false;
    later_.push_back([this, id, target = known->second, body = nat::encode_ice(offer)](Instant at) mutable {
      body = prove(security::AttachRole::Offer, target, std::move(body), {}, at);
      std::string offer_proof(security::attach_proof_line(body));
      peer_.chord().attach(
          target, std::move(body),
          [this, id, target, offer_proof = std::move(offer_proof)](const dht::RouteResult& res) {
            // Possibly within attach() itself: handed to the links once it has returned.
            later_.push_back([this, id, target, offer_proof, res](Instant t) {
              if (res.status == dht::Status::Ok) {
                if (auto no = check(security::AttachRole::Answer, target, res.payload, offer_proof, t)) {
                  env_.log(LogLevel::Warn,
                           "ice: an Attach's answer from " + target.short_hex() + " is refused: " + *no);
                  ice.attach_failed(id, 403, 0, t);
                  return;
                }
                auto answer = nat::parse_ice(res.payload, limits_);
                if (answer) {
                  ice.answered(id, *answer, t);
                } else {
                  env_.log(LogLevel::Info, "ice: an Attach's answer has no usable description: " + answer.error());
                  ice.attach_failed(id, 400, 0, t);
                }
              } else {
                ice.attach_failed(id, dht::code(res.status), res.retry_after_s, t);
              }
            });
          },
          at);
    });
    return true;
  }
  void answer_attach(std::uint64_t token, const nat::IceDescription& answer) override {
    later_.push_back([this, token, body = nat::encode_ice(answer)](Instant at) mutable {
      auto it = offers_.find(token);
      if (it == offers_.end()) return;
      const dht::AttachRequest& a = it->second;
      body =
          prove(security::AttachRole::Answer, a.sender.id, std::move(body), security::attach_proof_line(a.payload), at);
      peer_.chord().answer_attach(a, dht::Status::Ok, "OK", std::move(body), 0, at);
      offers_.erase(it);
    });
  }
  void refuse_attach(std::uint64_t token, int status, std::uint32_t retry_after_s) override {
    later_.push_back([this, token, status, retry_after_s](Instant at) {
      auto it = offers_.find(token);
      if (it == offers_.end()) return;
      const char* reason = status == 491 ? "Attach Crossed Ours" : "Too Many Links Or Attaches";
      peer_.chord().answer_attach(it->second, dht::status_of(status), reason, "", retry_after_s, at);
      offers_.erase(it);
    });
  }
  void link_up(const Endpoint& to, Instant) override { env_.log(LogLevel::Debug, "ice: link up to " + to.host_port()); }
  void link_down(const Endpoint& to, Instant) override {
    // What was held for it is gone: its requests fail now rather than at their time-outs.
    later_.push_back([this, to](Instant at) { peer_.node_.connection_lost(to, at); });
  }

  // dht::AttachHandler
  void on_attach(const dht::AttachRequest& a, Instant at) override {
    // Its origin's own proof: a peer on the path could have put its candidates under another's
    // DHT-Origin (security/attach_proof.hpp).
    if (auto no = check(security::AttachRole::Offer, a.sender.id, a.payload, {}, at)) {
      env_.log(LogLevel::Info, "ice: an Attach said to be from " + a.sender.id.short_hex() + " is refused: " + *no);
      peer_.chord().answer_attach(a, dht::Status::Forbidden, "Forbidden (Attach " + *no + ")", "", 0, at);
      return;
    }
    auto offer = nat::parse_ice(a.payload, limits_);
    if (!offer) {
      peer_.chord().answer_attach(a, dht::Status::BadRequest, "Bad ICE Description: " + offer.error(), "", 0, at);
      return;
    }
    // Bounded: the links answer or refuse every offer they take, but one whose answer never
    // came (its link closed first) must not stay for ever.
    if (offers_.size() >= kMaxOffers) offers_.erase(offers_.begin());
    // A sender we reach directly (a public peer) stays one: its link, while up, carries what we
    // send it, and without one everything goes straight to its address. Learned as reached by
    // Attach, a failed or lost link would hold our requests and responses to it, and the ring
    // would take a live public peer for dead (docs/NAT.md).
    if (a.sender.attach) learn(a.sender);
    const std::uint64_t token = next_token_++;
    offers_.emplace(token, a);
    // Within the Chord core's call: the links take it once that has returned.
    later_.push_back([this, token, from = a.sender.addr, offer = std::move(*offer)](Instant t) {
      ice.offered(from, offer, token, t);
    });
  }

  /// `description` with this node's proof for `to` appended (security/attach_proof.hpp); as it is
  /// without an identity (nothing is signed then).
  std::string prove(security::AttachRole role, const dht::NodeId& to, std::string description,
                    std::string_view offer_proof, Instant at) const {
    if (!peer_.guard_) return description;
    const Guard& g = *peer_.guard_;
    return security::prove_attach(g.crypto, g.writer.key, role, peer_.id(), to, unix_us(env_.wall_time(at)),
                                  description, offer_proof);
  }
  /// Why `proven` is not `from`'s description for this node (nullopt: it is, or nothing is checked
  /// without an identity).
  std::optional<std::string> check(security::AttachRole role, const dht::NodeId& from, std::string_view proven,
                                   std::string_view offer_proof, Instant at) const {
    if (!peer_.guard_) return std::nullopt;
    return security::check_attach(peer_.guard_->crypto, role, from, peer_.id(), unix_us(env_.wall_time(at)),
                                  kProofFreshness.count(), proven, offer_proof);
  }
  /// How far a proof's time may lie from this node's clock (the freshness of signed messages).
  static constexpr Duration kProofFreshness = seconds(30);

  /// Runs what was handed over, in order, until nothing is left.
  void settle(Instant at) {
    now = at;
    while (!later_.empty()) {
      auto f = std::move(later_.front());
      later_.pop_front();
      f(at);
    }
  }
  [[nodiscard]] bool idle() const { return later_.empty(); }
  Instant now{};
  bool behind_nat = false;  ///< this peer is reached by Attach: it keeps links to its neighbours
  Instant next_neighbours{};
  std::uint64_t neighbours_digest = 0;  ///< the neighbours and links as last walked
  Instant neighbours_due{};
  Peer& peer_;
  Environment& env_;
  nat::IceLinks ice;

 private:
  static constexpr std::size_t kMaxKnown = 4096;
  static constexpr std::size_t kMaxOffers = 512;
  nat::IceLimits limits_;
  std::unordered_map<Endpoint, dht::NodeId, EndpointHash> ids_;  ///< peers reached by Attach: their Node-IDs
  std::map<std::uint64_t, dht::AttachRequest> offers_;           ///< taken, not yet answered: oldest first
  std::uint64_t next_token_ = 1;
  std::deque<std::function<void(Instant)>> later_;
};

bool Peer::LinkedEnv::send(const Endpoint& to, std::string_view bytes) {
  if (links == nullptr || to.transport != Transport::Udp) return env_.send(to, bytes);
  return links->send(to, bytes);
}

Peer::Peer(PeerConfig config, Environment& overlay_env, Environment* phone_env)
    : env_(overlay_env),
      linked_env_(config.ice != nullptr ? std::make_unique<LinkedEnv>(overlay_env) : nullptr),
      node_(self_of(config), std::move(config.overlay), linked_env_ ? *linked_env_ : overlay_env),
      withdraw_time_(config.withdraw_time),
      leave_time_(config.leave_time),
      stun_(overlay_env, config.stun),
      role_(config.role),
      flow_config_(config.flows),
      relay_config_(config.relay),
      ice_port_(config.ice),
      link_config_(config.ice != nullptr ? std::make_unique<nat::IceLinkConfig>(config.links) : nullptr) {
  // Auto needs the verdict it decides by.
  if (!config.reachability && config.role == Role::Auto) config.reachability = nat::ReachabilityConfig{};
  if (config.reachability) {
    reach_ = std::make_unique<nat::Reachability>(stun_, config.address, *config.reachability);
  }
  decide_within_ = config.decide_within;
  if (config.security) {
    const PeerSecurity& s = *config.security;
    guard_ = std::make_unique<Guard>(s, overlay_env);
    node_.chord().set_guard(guard_->policy.get());
    node_.set_authenticator(guard_->auth.get());
    if (s.development_users) {
      guard_->users = std::make_unique<security::DevelopmentUsers>(node_.config().overlay, guard_->crypto, overlay_env,
                                                                   s.max_users, guard_->policy.get());
    } else {
      auto enrolled = std::make_unique<security::EnrolledUsers>(guard_->crypto, guard_->policy.get());
      for (const auto& u : s.users) enrolled->add(u);
      guard_->users = std::move(enrolled);
    }
  }
  if (config.phones) {
    // A peer with phones needs the environment that sends from their address.
    if (phone_env == nullptr) phone_env = &overlay_env;
    phone_env_ = phone_env;
    serves_phones_ = true;
    ua_ = std::make_unique<proxy::UaSide>(*phone_env, node_, std::move(*config.phones),
                                          guard_ ? guard_->users.get() : nullptr);
  } else if (config.relay) {
    // A relay peer without phones still proxies its clients' calls down their flows (RFC 5626
    // §5.3.1): the same proxy, with a phone face that sends nothing and an address no URI names.
    proxy::UaSideConfig relay_only;
    relay_only.registrar.domain = node_.config().overlay;
    relay_only.registrar.max_aors = 1;  // it registers no phone: no table presized for 100 000 (1.7 MB)
    relay_only.ua_address = Endpoint{Transport::Udp, config.address.ip, 0};
    no_phones_ = std::make_unique<NoPhones>(overlay_env);
    ua_ = std::make_unique<proxy::UaSide>(*no_phones_, node_, std::move(relay_only), nullptr);
  }
  if (config.turn_service) {
    TurnService::Overlay overlay;
    overlay.store = [this](dht::Record r, dht::RouteCallback done, Instant at) {
      store(std::move(r), std::move(done), at);
    };
    overlay.find = [this](dht::NodeId key, dht::RouteCallback done, Instant at) {
      if (flows_) sync_gateways(at);
      node_.chord().find(dht::kTurnServiceKind, key, std::move(done), at);
    };
    overlay.turn_in_use = [this] {
      if (link_config_) link_config_->turn = true;  // links made later
      if (links_) links_->ice.turn_in_use();
    };
    turn_ = std::make_unique<TurnService>(std::move(*config.turn_service), overlay_env, node_.chord(), ice_port_,
                                          std::move(overlay));
  }
}

Peer::~Peer() = default;

bool Peer::on_this_host(const std::vector<Endpoint>& peers) const {
  // Peers at our own address: nothing stands between them and us (others on loopback answer the
  // check at once, and seen at our own address we join).
  const Endpoint& self = node_.chord().table().self().addr;
  return std::all_of(peers.begin(), peers.end(), [&](const Endpoint& e) { return e.ip == self.ip; });
}

std::string_view role_name(Role r) {
  switch (r) {
    case Role::Peer: return "peer";
    case Role::Client: return "client";
    case Role::Auto: return "deciding";
  }
  return "peer";
}

void Peer::start(const std::vector<Endpoint>& bootstrap, Instant now) {
  started_ = now;
  bootstrap_ = bootstrap;
  if (role_ == Role::Client && !bootstrap.empty()) {
    begin_client(now);
  } else if (role_ == Role::Auto && !bootstrap.empty() && !on_this_host(bootstrap)) {
    decide_by_ = now + decide_within_;  // the reachability check below asks the bootstrap peers
    node_.set_relay_pending(relay_config_.has_value());
  } else {
    begin_peer(now);
  }
  check_reachability(now);
}

void Peer::begin_peer(Instant now) {
  role_ = Role::Peer;
  node_.set_relay_pending(false);
  decide_by_ = kInstantMax;
  if (relay_config_) {
    relay_ = std::make_unique<nat::RelayTable>(*relay_config_);
    node_.set_relay(relay_.get());
  }
  if (ice_port_ != nullptr && !links_) begin_links(false, now);
  node_.start(bootstrap_, now);
}

void Peer::begin_links(bool attach, Instant now) {
  const Endpoint self = node_.chord().table().self().addr;
  links_ = std::make_unique<Links>(*this, *ice_port_, env_, self, *link_config_);
  links_->now = now;
  links_->behind_nat = attach;
  linked_env_->links = links_.get();
  node_.chord().set_attach_handler(links_.get());
  node_.chord().set_links(links_.get());
}

void Peer::begin_flows(Instant now) {
  flows_ = std::make_unique<nat::FlowSet>(node_, stun_, env_, flow_config_);
  // RFC 5626 §4.1: one instance URN for the node's whole life, here its Node-ID as a UUID's text.
  const std::string hex = id().hex();
  std::string urn = "urn:uuid:" + hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
                    hex.substr(16, 4) + "-" + hex.substr(20, 12);
  node_.set_flows(flows_.get(), std::move(urn), flow_transport_);
  flows_->set_candidates(relay_candidates(), now);
  next_relay_probe_ = now + seconds(30);  // enough candidates by then, or it asks for more
  sync_gateways(now);
}

void Peer::settle_links(Instant now) {
  if (!links_) return;
  links_->settle(now);
  // A peer behind a NAT keeps links to its neighbours (RFC 6940 §6.5.1's joining peer attaches to
  // them), so that each of them reaches it, and carries to it the Attaches of peers that know it
  // only as a finger (NAT.md, "Peers behind cone NATs").
  if (links_->behind_nat && node_.chord().joined() && now >= links_->next_neighbours && phase_ == Phase::Running) {
    links_->next_neighbours = now + seconds(1);
    const auto& table = node_.chord().table();
    // Walked again when the neighbours or the links changed, and every 5 s for links whose back-off
    // has run out (each look at a link is a hash of its address: per peer per second, it added up).
    std::uint64_t digest = links_->ice.changes() * 0x9E3779B97F4A7C15ULL;
    for (const auto* list : {&table.predecessors(), &table.successors()}) {
      for (const auto& p : *list) digest = (digest ^ p.id.hi ^ (p.id.lo * 31)) * 0x100000001B3ULL;
    }
    if (digest == links_->neighbours_digest && now < links_->neighbours_due) return;
    links_->neighbours_digest = digest;
    links_->neighbours_due = now + seconds(5);
    auto keep = [&](const dht::Peer& p) {
      if (links_->ice.has_link(p.addr)) return;
      links_->learn(p);
      links_->ice.connect(p.addr, now);
    };
    for (const auto& p : table.predecessors()) keep(p);
    for (const auto& p : table.successors()) keep(p);
    links_->settle(now);
  }
}

void Peer::begin_client(Instant now) {
  peer_link_transport_ = node_.config().link_transport;
  role_ = Role::Client;
  node_.set_relay_pending(false);
  decide_by_ = kInstantMax;
  node_.chord().start_client(now);
  if (node_.authenticator() != nullptr) {
    // An overlay that authenticates its peers takes calls only over TLS links (UaSide): the flows,
    // and everything the client sends, go over TLS, so that calls can come down them too.
    flow_transport_ = Transport::Tls;
    node_.set_link_transport(Transport::Tls);
  } else if (reach_ && reach_->nat_class() == nat::NatClass::UdpBlocked) {
    // A network that lets no UDP out: the flows, and everything the client sends, go over TCP.
    flow_transport_ = Transport::Tcp;
    node_.set_link_transport(Transport::Tcp);
  }
  node_.chord().set_gateway_silent([this](const Endpoint& relay, Instant at) { flows_->suspect(relay, at); });
  begin_flows(now);
}

std::vector<Endpoint> Peer::relay_candidates() const {
  std::vector<Endpoint> relays = bootstrap_;
  relays.insert(relays.end(), learned_relays_.begin(), learned_relays_.end());
  for (auto& r : relays) r.transport = flow_transport_;
  return relays;
}

void Peer::decide(Instant now) {
  if (role_ != Role::Auto) return;
  const auto& st = reach_->status();
  const bool verdict = st.checks > 0 && !st.checking;
  if (!verdict && now < decide_by_) return;
  if (verdict && st.nat_class == nat::NatClass::Public) {
    env_.log(LogLevel::Info, "peer: seen at its own address: joining the ring");
    begin_peer(now);
    return;
  }
  if (verdict && st.nat_class == nat::NatClass::Cone && ice_port_ != nullptr && st.reflexive) {
    // Behind a NAT that maps endpoint-independently (RFC 4787 §4.1): peers reach it over ICE links,
    // which an Attach routed to its Node-ID sets up. It is named by its reflexive address, marked.
    Endpoint reflexive = *st.reflexive;
    reflexive.transport = Transport::Udp;
    env_.log(LogLevel::Info, "peer: behind a cone NAT, seen at " + reflexive.host_port() +
                                 ": joining the ring, reached by Attach over ICE links");
    node_.chord().set_self_address(reflexive, true);
    // Relaying needs connections others can open (a client's TLS flow): not behind a NAT.
    relay_config_.reset();
    begin_links(true, now);
    begin_peer(now);
    if (ua_ && serves_phones_) {
      // Calls between nodes go over TLS (or TCP), which a link does not carry: its phones are
      // reached through relay peers' flows, as a client's are (a client promoted keeps its own).
      if (node_.authenticator() != nullptr) flow_transport_ = Transport::Tls;
      if (!flows_) begin_flows(now);
    }
    return;
  }
  env_.log(LogLevel::Info, std::string("peer: ") +
                               (verdict ? "behind a NAT (" + std::string(nat::nat_class_name(st.nat_class)) + ")"
                                        : std::string("no verdict in time")) +
                               ": a client through relay peers");
  begin_client(now);
  // Its checks go on (every peer it learns is asked too): one that could ask a single peer, or
  // whose network changed, may find it can be reached after all.
  promotable_ = true;
}

void Peer::promote(Instant now) {
  // RFC 6940 §3.2.1: a node that others can reach is a peer. Only a verdict of public, or of a cone
  // NAT with an ICE agent to be reached through, makes it one; a client stays one otherwise.
  const auto& st = reach_->status();
  env_.log(LogLevel::Info, "peer: a client until now, " + std::string(nat::nat_class_name(st.nat_class)) +
                               " by its last check: joining the ring");
  promotable_ = false;
  node_.chord().stop_client();
  node_.set_link_transport(peer_link_transport_);
  next_relay_probe_ = kInstantMax;
  if (flows_ && !(ua_ && serves_phones_)) {
    // The flows served the node's own operations, which take the ring now.
    flows_->close(now);
    node_.set_flows(nullptr, "", flow_transport_);
  }
  role_ = Role::Auto;
  decide_by_ = now;
  decide(now);
}

void Peer::sync_gateways(Instant now) {
  if (links_) settle_links(now);  // a peer without an ICE agent (every simulated one) pays one test
  // Called after every event: the relays are looked at again only when a flow came, went or moved.
  if (!flows_ || (flows_->version() == synced_flows_ && synced_phase_ == phase_)) return;
  synced_flows_ = flows_->version();
  synced_phase_ = phase_;
  auto relays = flows_->relays();
  // A peer's flows serve its phones only: its own operations take the ring.
  if (role_ == Role::Client && relays != node_.chord().gateways()) node_.chord().set_gateways(std::move(relays));
  // Callers reach this node's phones through its relays: its registration entries name them.
  if (ua_ && phase_ == Phase::Running) ua_->set_via(flows_->relay_uris(), now);
}

void Peer::shutdown(Instant now) {
  if (links_) links_->now = now;
  if (phase_ != Phase::Running) return;
  if (flows_) flows_->close(now);
  // First the registrations this node serves leave the overlay (callers get 404 rather than an
  // unanswered node), then the node itself.
  phase_ = Phase::Withdrawing;
  deadline_ = now + withdraw_time_;
  if (ua_) ua_->withdraw_all(now);
  progress(now);
}

void Peer::progress(Instant now) {
  if (phase_ == Phase::Withdrawing && (!ua_ || ua_->withdrawn() || now >= deadline_)) {
    phase_ = Phase::Leaving;
    deadline_ = now + leave_time_;
    node_.leave(now);
  }
  if (phase_ == Phase::Leaving && (node_.chord().left() || now >= deadline_)) {
    if (!node_.chord().left()) {
      env_.log(LogLevel::Warn, "leave not acknowledged within " + std::to_string(to_millis(leave_time_) / 1000) +
                                   " s; stopping anyway");
    }
    phase_ = Phase::Stopped;
    deadline_ = kInstantMax;
  }
}

// ---- bytes in -----------------------------------------------------------------------------------------

void Peer::receive_datagram(Face face, std::string_view bytes, const Endpoint& from, Instant now) {
  if (links_) links_->now = now;
  if (nat::looks_like_stun(bytes) || nat::is_classic_binding_request(bytes)) {
    receive_stun(face, bytes, from, now);
  } else if (face == Face::Phones && ua_) {
    ua_->receive_datagram(bytes, from, now);
  } else if (face == Face::Overlay) {
    node_.receive_datagram(bytes, from, now);
  }
  sync_gateways(now);
  if (phase_ != Phase::Running) progress(now);
}

void Peer::receive(Face face, sip::Message&& m, const Endpoint& from, Instant now, const LinkIdentity* link) {
  if (links_) links_->now = now;
  if (face == Face::Phones && ua_) {
    ua_->receive(m, from, now);
  } else if (face == Face::Overlay) {
    const dht::NodeId peer = link != nullptr ? dht::NodeId::from_link_identity(*link) : dht::NodeId{};
    node_.receive(std::move(m), from, now, link != nullptr ? &peer : nullptr);
  }
  sync_gateways(now);
  if (phase_ != Phase::Running) progress(now);
}

void Peer::receive(Face face, const sip::Message& m, const Endpoint& from, Instant now, const LinkIdentity* link) {
  if (links_) links_->now = now;
  if (face == Face::Phones && ua_) {
    ua_->receive(m, from, now);
  } else if (face == Face::Overlay) {
    const dht::NodeId peer = link != nullptr ? dht::NodeId::from_link_identity(*link) : dht::NodeId{};
    node_.receive(m, from, now, link != nullptr ? &peer : nullptr);
  }
  sync_gateways(now);
  if (phase_ != Phase::Running) progress(now);
}

void Peer::answer_malformed(Face face, std::string_view raw, const sip::ParseError& e, const Endpoint& from) {
  if (face == Face::Phones && ua_) {
    ua_->answer_malformed(raw, e, from);
  } else if (face == Face::Overlay) {
    node_.answer_malformed(raw, e, from);
  }
}

std::optional<LinkIdentity> Peer::check_link(std::string_view cert_der, const Endpoint& from, Instant now) {
  auto id = node_.check_link(cert_der, from, now);
  if (!id) return std::nullopt;
  return id->link_identity();
}

void Peer::receive_stun(Face face, std::string_view bytes, const Endpoint& from, Instant now) {
  if (nat::is_classic_binding_request(bytes)) {
    // RFC 8489 §12.2: a classic (RFC 3489) client, such as libnice's agents finding their
    // server-reflexive candidates, is answered too.
    Environment* env = face == Face::Phones ? phone_env_ : &env_;
    if (env != nullptr && env->send(from, nat::answer_classic_binding(bytes, from))) ++nat_counts_.bindings_answered;
    return;
  }
  auto m = nat::decode_stun(bytes);
  if (!m) {
    // RFC 8489 §6.3: what does not decode is discarded silently; nobody is answered.
    ++nat_counts_.dropped;
    env_.log(LogLevel::Debug, "stun from " + from.to_string() + " dropped: " + std::string(nat::describe(m.error())));
    return;
  }
  switch (m->cls) {
    case nat::StunClass::Request: {
      Environment* env = face == Face::Phones ? phone_env_ : &env_;
      if (m->method != nat::method::Binding || env == nullptr) {
        ++nat_counts_.dropped;  // a TURN request, say: this port is no TURN server
        return;
      }
      // RFC 8489 §6.3.1 and RFC 5626 §8.4: every node answers Binding requests on its ports, so
      // that peers and phones learn their reflexive addresses and keep their NAT bindings.
      if (env->send(from, nat::answer_binding(*m, from, ""))) ++nat_counts_.bindings_answered;
      return;
    }
    case nat::StunClass::Indication:
      ++nat_counts_.indications;  // keep-alives (RFC 8489 §6.3.2): nothing to do
      return;
    case nat::StunClass::Success:
    case nat::StunClass::Error:
      if (face != Face::Overlay || !stun_.receive(*m, from, now)) ++nat_counts_.dropped;
      check_reachability(now);
      sync_gateways(now);
      return;
  }
}

std::vector<Endpoint> Peer::stun_candidates() const {
  std::vector<Endpoint> out = bootstrap_;
  // A client's table is empty: its flows' candidates (the bootstrap peers, the relays it learned and
  // those its relays named) are peers in the ring too, each answering Binding requests on its
  // overlay UDP port.
  if (flows_) {
    for (auto e : flows_->candidates()) {
      e.transport = Transport::Udp;
      out.push_back(e);
    }
  }
  for (const auto& p : node_.chord().table().known_peers()) out.push_back(p.addr);
  return out;
}

void Peer::check_reachability(Instant now) {
  if (!reach_ || phase_ != Phase::Running) return;
  if (reach_->due(now)) reach_->check(stun_candidates(), now);
  if (role_ == Role::Auto) decide(now);
  if (promotable_ && role_ == Role::Client) {
    const auto& now_st = reach_->status();
    const bool verdict = now_st.checks > 0 && !now_st.checking;
    if (verdict && (now_st.nat_class == nat::NatClass::Public ||
                    (now_st.nat_class == nat::NatClass::Cone && ice_port_ != nullptr && now_st.reflexive))) {
      promote(now);
    }
  }
  const auto& st = reach_->status();
  if (st.checks != logged_checks_) {
    const bool changed = logged_checks_ == 0 || st.changes > 0;
    logged_checks_ = st.checks;
    if (changed) {
      std::string text = "nat: " + std::string(nat::nat_class_name(st.nat_class));
      if (st.reflexive) text += ", seen at " + st.reflexive->host_port();
      std::size_t answered = 0;
      for (const auto& o : st.observations) answered += o.mapped ? 1 : 0;
      text += " (" + std::to_string(answered) + " of " + std::to_string(st.observations.size()) + " peers answered)";
      env_.log(LogLevel::Info, text);
    }
  }
}

// ---- time -----------------------------------------------------------------------------------------------

void Peer::connection_lost(Face face, const Endpoint& remote, Instant now) {
  if (links_) links_->now = now;
  if (face == Face::Phones) {
    if (ua_) ua_->connection_lost(remote, now);
    return;
  }
  if (flows_) flows_->connection_lost(remote, now);
  node_.connection_lost(remote, now);
  sync_gateways(now);
}

void Peer::pong(Face face, const Endpoint& remote, Instant now) {
  if (face == Face::Overlay && flows_) flows_->pong(remote, now);
}

void Peer::advance(Instant now) {
  if (links_) links_->now = now;
  node_.advance(now);
  if (links_ && links_->ice.next_wakeup() <= now) links_->ice.advance(now);
  if (stun_.next_wakeup() <= now) stun_.advance(now);
  if (flows_ && relays_changed_) {
    relays_changed_ = false;
    flows_->set_candidates(relay_candidates(), now);
  }
  if (flows_ && flows_->next_wakeup() <= now) flows_->advance(now);
  if (flows_ && next_relay_probe_ <= now) probe_relays(now);
  if (relay_ && relay_->next_expiry() <= now) relay_->expire(now);
  check_reachability(now);
  sync_gateways(now);
  if (role_ == Role::Auto && now >= decide_by_) decide(now);
  if (ua_ && ua_->next_wakeup() <= now) ua_->advance(now);
  if (turn_) {
    // RFC 6940 §9: a TURN server is announced by a peer in the ring seen at its own address only.
    const bool running = phase_ == Phase::Running;
    const bool in_ring = running && role_ == Role::Peer && node_.chord().joined();
    const bool seen_as_is = !reach_ || reach_->status().nat_class == nat::NatClass::Public;
    const bool routes = running && (node_.chord().joined() || (flows_ && flows_->any_active()));
    turn_->advance(now, in_ring && seen_as_is, routes);
  }
  sync_gateways(now);
  if (phase_ != Phase::Running) progress(now);
}

Instant Peer::next_wakeup() const {
  Instant next = std::min(node_.next_wakeup(), deadline_);
  if (ua_) next = std::min(next, ua_->next_wakeup());
  if (turn_) next = std::min(next, turn_->next_wakeup());
  next = std::min(next, stun_.next_wakeup());
  if (reach_ && phase_ == Phase::Running) next = std::min(next, reach_->next_check());
  if (flows_) next = std::min({next, flows_->next_wakeup(), next_relay_probe_});
  if (relay_) next = std::min(next, relay_->next_expiry());
  next = std::min(next, decide_by_);
  if (links_) {
    next = std::min(next, links_->ice.next_wakeup());
    if (links_->behind_nat && node_.chord().joined()) next = std::min(next, links_->next_neighbours);
    if (!links_->idle()) next = std::min(next, links_->now);
  }
  return next;
}

// ---- the ICE agent's reports ----------------------------------------------------------------------------

void Peer::ice_credentials(nat::IceSessionId id, const nat::IceCredentials& c, Instant now) {
  if (!links_) return;
  links_->now = now;
  links_->ice.local_credentials(id, c, now);
  sync_gateways(now);
}

void Peer::ice_candidate(nat::IceSessionId id, const nat::IceCandidate& c, Instant now) {
  if (!links_) return;
  links_->now = now;
  links_->ice.local_candidate(id, c, now);
  sync_gateways(now);
}

void Peer::ice_gathering_done(nat::IceSessionId id, Instant now) {
  if (!links_) return;
  links_->now = now;
  links_->ice.gathering_done(id, now);
  sync_gateways(now);
}

void Peer::ice_connected(nat::IceSessionId id, nat::CandidateType local, nat::CandidateType remote, Instant now) {
  if (!links_) return;
  links_->now = now;
  links_->ice.connected(id, local, remote, now);
  sync_gateways(now);
}

void Peer::ice_failed(nat::IceSessionId id, Instant now) {
  if (!links_) return;
  links_->now = now;
  links_->ice.failed(id, now);
  sync_gateways(now);
}

void Peer::ice_datagram(nat::IceSessionId id, std::string_view bytes, Instant now) {
  if (!links_) return;
  links_->now = now;
  auto from = links_->ice.received(id, now);
  if (!from) return;
  // Only overlay messages ride a link (the agent keeps its own STUN).
  node_.receive_datagram(bytes, *from, now);
  sync_gateways(now);
  if (phase_ != Phase::Running) progress(now);
}

const nat::IceLinks* Peer::ice_links() const {
  return links_ ? &links_->ice : nullptr;
}

// ---- the application's operations --------------------------------------------------------------------

void Peer::route(dht::RouteOp op, dht::NodeId target, std::optional<dht::Record> record, dht::RouteCallback done,
                 Instant now) {
  if (links_) links_->now = now;
  if (phase_ != Phase::Running) {
    dht::RouteResult refused;
    refused.status = dht::Status::Unavailable;
    refused.reason = "Node Is Leaving The Overlay";
    done(refused);
    return;
  }
  if (flows_) {
    sync_gateways(now);
    // A client learns peers from the answers its relays bring back: the peers responsible for
    // its keys are in the ring, and so candidates for its next relay.
    done = [this, done = std::move(done)](const dht::RouteResult& res) {
      // (Not one behind a NAT: nobody opens a flow to it.)
      if (res.status == dht::Status::Ok && res.responsible && !res.responsible->attach) {
        learn_relay(res.responsible->addr);
      }
      done(res);
    };
  }
  node_.chord().route(op, target, std::move(record), std::move(done), now);
}

void Peer::probe_relays(Instant now) {
  next_relay_probe_ = kInstantMax;
  if (phase_ != Phase::Running || !flows_) return;
  // Distinct peers: a bootstrap list may name one peer twice.
  std::vector<Endpoint> known = relay_candidates();
  std::size_t distinct = 0;
  for (std::size_t i = 0; i < known.size(); ++i) {
    const auto same = [&](const Endpoint& e) { return e.ip == known[i].ip && e.port == known[i].port; };
    distinct += std::none_of(known.begin(), known.begin() + static_cast<std::ptrdiff_t>(i), same);
  }
  if (distinct >= flows_->status().size()) {
    relay_probe_wait_ = Duration{};  // enough: asked again only if that changes
    return;
  }
  relay_probe_wait_ =
      relay_probe_wait_ == Duration{} ? seconds(30) : std::min(relay_probe_wait_ * 2, Duration(seconds(600)));
  next_relay_probe_ = now + relay_probe_wait_;
  if (!flows_->any_active() && !node_.chord().joined()) return;  // nothing to ask through yet
  env_.log(LogLevel::Debug, "peer: " + std::to_string(distinct) + " relay candidate(s) for " +
                                std::to_string(flows_->status().size()) + " flows: lookups ask the ring for more");
  // Each answer's responsible peer is learnt as a candidate (route's wrapper, learn_relay), unless
  // it is behind a NAT itself: several keys at once, so that a ring where most peers are (the
  // simulator's early ring: 57 %) does not leave a client a single relay through four probes.
  for (int i = 0; i < 3; ++i) {
    dht::NodeId key;
    key.hi = env_.random();
    key.lo = env_.random();
    route(
        dht::RouteOp::Lookup, key, std::nullopt, [](const dht::RouteResult&) {}, now);
  }
}

void Peer::learn_relay(const Endpoint& addr) {
  if (!flows_ || learned_relays_.size() >= 8) return;
  const auto same = [&](const Endpoint& e) { return e.ip == addr.ip && e.port == addr.port; };
  if (std::any_of(bootstrap_.begin(), bootstrap_.end(), same) ||
      std::any_of(learned_relays_.begin(), learned_relays_.end(), same)) {
    return;
  }
  learned_relays_.push_back(addr);
  relays_changed_ = true;
}

void Peer::put(const std::string& key, std::string value, std::uint32_t lifetime_s, dht::RouteCallback done,
               Instant now) {
  dht::Record r;
  r.key = dht::NodeId::hash(key);
  r.name = key;
  r.value = std::move(value);
  r.owner = id().hex();
  r.lifetime_s = lifetime_s;
  store(std::move(r), std::move(done), now);
}

void Peer::store(dht::Record r, dht::RouteCallback done, Instant now) {
  if (guard_) {
    // Signed as this node (NODE-MATCH names it by its Node-ID): storing peers refuse unsigned
    // records. Each is written later than the last, so that none is taken for a replay.
    last_put_ = std::max(env_.wall_time(now), last_put_ + WallClock::duration(1));
    guard_->writer.sign(r, last_put_);
  }
  const dht::NodeId target = r.key;
  route(dht::RouteOp::Store, target, std::move(r), std::move(done), now);
}

const security::Writer* Peer::writer() const {
  return guard_ ? &guard_->writer : nullptr;
}

void Peer::get(const std::string& key, dht::RouteCallback done, Instant now) {
  route(dht::RouteOp::Fetch, dht::NodeId::hash(key), std::nullopt, std::move(done), now);
}

void Peer::lookup(const std::string& key, dht::RouteCallback done, Instant now) {
  route(dht::RouteOp::Lookup, dht::NodeId::hash(key), std::nullopt, std::move(done), now);
}

void Peer::locate(const std::string& aor, std::function<void(const Location&)> done, Instant now) {
  route(
      dht::RouteOp::Fetch, dht::NodeId::hash(aor), std::nullopt,
      [done = std::move(done)](const dht::RouteResult& res) {
        Location where;
        where.status = dht::code(res.status);
        where.reason = res.reason;
        where.hops = res.hops;
        where.latency = res.latency;
        for (const auto& rec : res.records) {
          auto e = proxy::decode_registration(rec.value);
          if (e) where.entries.push_back(Location::Entry{*e, rec.lifetime_s});  // others are not registrations
        }
        done(where);
      },
      now);
}

// ---- status -------------------------------------------------------------------------------------------

PeerStatus Peer::status(Instant now) const {
  const auto& chord = node_.chord();
  const auto& table = chord.table();
  PeerStatus s;
  s.id = table.self().id;
  s.overlay = node_.config().overlay;
  s.address = table.self().addr;
  s.joined = chord.joined();
  s.stopping = stopping();
  s.uptime = now - started_;
  s.predecessors = table.predecessors();
  s.successors = table.successors();
  s.fingers = table.distinct_fingers();
  s.records = chord.storage().size();
  s.messages = node_.stats();
  s.transactions = node_.transactions().stats();
  s.chord = chord.stats();
  if (guard_) {
    PeerStatus::Security sec;
    sec.development = guard_->development;
    sec.users = guard_->enrolled_users;
    sec.records = guard_->policy->stats();
    if (guard_->auth) sec.messages = guard_->auth->stats();
    s.security = sec;
  }
  if (ua_ && serves_phones_) {
    PeerStatus::Phones p;
    const auto& r = ua_->registrar();
    p.address = ua_->config().ua_address;
    p.users = r.aors();
    p.bindings = r.size();
    p.entries_in_overlay = ua_->published();
    p.requests_in_progress = ua_->calls();
    p.response_contexts = ua_->contexts();
    p.stats = ua_->stats();
    p.users_list = r.aor_list(100);
    s.phones = std::move(p);
  }
  s.nat.bindings_answered = nat_counts_.bindings_answered;
  s.nat.indications = nat_counts_.indications;
  s.nat.dropped = nat_counts_.dropped;
  s.nat.role = std::string(role_name(role_));
  if (turn_) s.nat.turn_service = turn_->status();
  if (flows_) {
    // A client's flows, or those of a peer behind a NAT for its phones.
    s.nat.flows = flows_->status();
    s.nat.flow_stats = flows_->stats();
    s.nat.reached = "relay";
    s.nat.reached_via = flows_->relay_uris();
  }
  if (role_ == Role::Client) {
    for (const auto& f : s.nat.flows) {
      if (f.state == nat::FlowState::Active && f.relay) {
        s.nat.links.push_back({dht::Peer{dht::NodeId::from_hex(f.relay_id).value_or(dht::NodeId{}), *f.relay}, "flow"});
      }
    }
  } else {
    std::vector<nat::IceLinkStatus> ice;
    if (links_) {
      ice = links_->ice.status();
      s.nat.ice_stats = links_->ice.stats();
      // Behind a NAT: peers reach it by Attach, and its phones' callers through its relays.
      if (links_->behind_nat) s.nat.reached = "attach";
    }
    for (const auto& p : table.known_peers()) {
      auto l = std::find_if(ice.begin(), ice.end(), [&](const nat::IceLinkStatus& x) { return x.peer == p.addr; });
      if (l != ice.end() && l->state == nat::LinkState::Up) {
        s.nat.links.push_back({p, l->relayed ? "ice-relayed" : "ice-direct"});
      } else {
        s.nat.links.push_back({p, p.attach ? "attach" : "direct"});
      }
    }
    s.nat.ice = std::move(ice);
  }
  if (relay_) {
    PeerStatus::Nat::Relay r;
    r.clients = relay_->clients();
    r.flows = relay_->flows();
    r.max_clients = relay_->config().max_clients;
    r.stats = relay_->stats();
    if (ua_) r.calls_relayed = ua_->stats().relayed;
    s.nat.relay = r;
  }
  s.nat.checked = reach_ != nullptr;
  if (reach_) s.nat.reach = reach_->status();
  s.nat.client = stun_.stats();
  return s;
}

}  // namespace p2psip::peer
