#include "node/overlay/overlay_node.hpp"

#include <algorithm>
#include <array>

#include "core/hex.hpp"
#include "node/overlay/codec.hpp"
#include "node/sip/scanner.hpp"

namespace p2psip::overlay {

namespace {
/// T2 at most 8*T1, RFC 3261's own ratio (500 ms and 4 s). A recursive route relies on the order
/// of three times: a live next hop sends 100 Trying once Timer E reaches T2 (RFC 4320 §4.2), a hop
/// silent for the hop timeout after that is dead, and both come well before Timer F (64*T1) ends
/// the transaction upstream. With T2 fixed at 4 s and a small T1 (50 ms on a LAN: E would reach T2
/// after 6.35 s, past F at 3.2 s) no 100 Trying is ever sent in time and every hop upstream of a
/// dead peer times out together with the hop that waits on it, taking live peers for dead.
sip::TimerConfig scaled(const sip::TimerConfig& timers) {
  sip::TimerConfig t = timers;
  t.t2 = std::min(t.t2, t.t1 * 8);
  return t;
}
}  // namespace

Duration effective_hop_timeout(const OverlayConfig& config) {
  if (config.hop_timeout) return *config.hop_timeout;
  const sip::TimerConfig t = scaled(config.timers);
  return sip::non_invite_trying_deadline(t) + t.t1 * 4;
}

namespace {
sip::TimerConfig overlay_timers(const OverlayConfig& config) {
  sip::TimerConfig t = scaled(config.timers);
  t.non_invite_silence = effective_hop_timeout(config);
  return t;
}

/// True when the request's sender wrote TLS in its Via: the link, not the message, is authenticated.
bool came_over_tls(const sip::Message& request) {
  auto via = sip::top_via(request);
  return via && sip::iequals(via->transport, "TLS");
}
}  // namespace

OverlayNode::OverlayNode(dht::Peer self, OverlayConfig config, Environment& env)
    : cfg_(std::move(config)),
      env_(env),
      layer_(env, *this, overlay_timers(cfg_), cfg_.limits),
      chord_(std::move(self), cfg_.chord, *this, env),
      peer_limits_(cfg_.peer_rate) {}

Hex64 OverlayNode::token() {
  return Hex64(env_.secure_random());
}

void OverlayNode::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  const Receiving sender(*this, from, nullptr);
  layer_.receive_datagram(bytes, from, now);
}
void OverlayNode::receive(const sip::Message& m, const Endpoint& from, Instant now, const dht::NodeId* link_peer) {
  const Receiving sender(*this, from, link_peer);
  layer_.receive(m, from, now);
}
void OverlayNode::receive(sip::Message&& m, const Endpoint& from, Instant now, const dht::NodeId* link_peer) {
  const Receiving sender(*this, from, link_peer);
  layer_.receive(std::move(m), from, now);
}

Result<dht::NodeId, AuthVerdict> OverlayNode::check_link(std::string_view cert_der, const Endpoint& from, Instant now) {
  if (auth_ == nullptr)
    return unexpected(AuthVerdict{437, "Unsupported Credential (This Node Checks No Certificates)"});
  auto id = auth_->check_link(cert_der, now);
  if (!id) auth_->log_refusal(dht::NodeId{}, from, id.error(), now);
  return id;
}

AuthVerdict OverlayNode::authenticate(const sip::Message& m, const dht::NodeId* signer, Instant now,
                                      dht::NodeId* signed_by) {
  if (link_peer_ == nullptr) return auth_->check(m, signer, now, signed_by);
  if (signer != nullptr && *link_peer_ != *signer) {
    return AuthVerdict{
        403, "Forbidden (Node-ID " + signer->short_hex() + " Claimed, TLS Link Is " + link_peer_->short_hex() + "'s)"};
  }
  if (signed_by != nullptr) *signed_by = *link_peer_;
  return {};
}

void OverlayNode::answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from) {
  layer_.answer_malformed(raw, e, from);
}

void OverlayNode::advance(Instant now) {
  layer_.advance(now);
  chord_.advance(now);
}

Instant OverlayNode::next_wakeup() const {
  return std::min(layer_.next_wakeup(), chord_.next_wakeup());
}

bool OverlayNode::send(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now) {
  return send_request(id, to, r, now, false);
}

bool OverlayNode::send_request(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now,
                               bool resent) {
  RequestFraming f;
  f.overlay = cfg_.overlay;
  // On the stack, drawn in this order (branch, Call-ID, From tag): a run's random stream is fixed.
  const sip::TransactionLayer::Branch branch = layer_.new_branch();
  f.branch = branch.view();
  // "token@overlay", on the stack unless the overlay's name is unusually long.
  const Hex64 call_token = token();
  std::array<char, 96> call_room{};
  std::string call_spilled;
  if (call_token.view().size() + 1 + cfg_.overlay.size() <= call_room.size()) {
    char* p = std::copy(call_token.view().begin(), call_token.view().end(), call_room.data());
    *p++ = '@';
    p = std::copy(cfg_.overlay.begin(), cfg_.overlay.end(), p);
    f.call_id = std::string_view(call_room.data(), static_cast<std::size_t>(p - call_room.data()));
  } else {
    call_spilled.append(call_token.view()).append(1, '@').append(cfg_.overlay);
    f.call_id = call_spilled;
  }
  const Hex64 from_tag = token();
  f.from_tag = from_tag.view();
  // Over UDP links, large bodies (replication, hand-over) still go over TCP.
  std::size_t body_estimate = 0;
  for (const auto& rec : r.records) body_estimate += rec.name.size() + rec.value.size() + rec.owner.size() + 40;
  f.transport = cfg_.link_transport;
  if (f.transport == Transport::Udp && body_estimate > cfg_.udp_body_limit) f.transport = Transport::Tcp;
  sip::Message m = encode_request(r, f);
  Outgoing out{id, to.id, to.id != dht::NodeId{}, false, resent};
  // Over a TLS link the handshake authenticates the whole connection; elsewhere every message is signed.
  if (auth_ != nullptr && f.transport != Transport::Tls) {
    out.carried_cert = auth_->sign_request(m, out.to_known ? &out.to : nullptr, now);
  }
  Endpoint dest = to.addr;
  dest.transport = f.transport;
  ++stats_.requests_sent;
  if (f.transport == Transport::Tcp) ++stats_.messages_sent_tcp;
  auto txn = layer_.send_request(m, dest, now, branch.view());  // encode_request's Via has it
  if (!txn) return false;                                       // the transport refused it at once
  outstanding_[*txn] = out;
  return true;
}

void OverlayNode::reply(dht::ReplyHandle handle, const dht::Response& r, Instant now) {
  const sip::Message* request = layer_.request_of(handle);
  if (request == nullptr) return;  // the transaction is gone (RFC 4320: no answer without one)
  ++stats_.responses_sent;
  sip::Message m = encode_response(*request, r, cfg_.overlay, token());
  if (auth_ != nullptr && !came_over_tls(*request)) auth_->sign_response(m, *request, now);
  layer_.respond(handle, m, now);
}

namespace {
/// True for the overlay's own requests: operations (REGISTER with DHT-Op) and liveness probes
/// (OPTIONS to a node: no user, or a Node-ID as the user). Anything else is a call's traffic.
bool overlay_request(const sip::Message& m) {
  if (m.method_id() == sip::Method::Register) return true;
  if (m.method_id() != sip::Method::Options) return false;
  auto uri = sip::parse_uri(m.request_uri());
  return !uri || uri->user.empty() || dht::NodeId::from_hex(uri->user).has_value();
}
}  // namespace

void OverlayNode::on_request(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) {
  // A peer that sends more than its share is answered 503 with Retry-After (RFC 3261 §21.5.4) at
  // once, before any work; other peers are served as before. Retransmissions never get here (the
  // transaction layer answers them).
  if (auto wait = peer_limits_.take(from, now)) {
    ++stats_.throttled;
    if (peer_limits_.first_in(from, now)) {
      env_.log(LogLevel::Warn, "overlay: " + from.to_string() + " sends more than " +
                                   std::to_string(static_cast<int>(cfg_.peer_rate.per_s)) +
                                   " requests/s; answering 503 (logged once per 10 s)");
    }
    const auto after_s = std::max<std::int64_t>(1, (wait->count() + 999999) / 1000000);
    layer_.respond(id,
                   sip::make_rejection(request,
                                       sip::Rejection{503, "Service Unavailable (Request Rate Over Limit)",
                                                      sip::HeaderId::RetryAfter, std::to_string(after_s)},
                                       token()),
                   now);
    return;
  }
  if (delegate_ && !overlay_request(request)) {
    // Call traffic from another node: with authentication on, only over a TLS link whose peer
    // proved its certificate (the proxy sends it so: proxy::UaSide::call_transport).
    if (auth_ != nullptr && link_peer_ == nullptr) {
      ++stats_.unauthenticated;
      auth_->log_refusal(dht::NodeId{}, from, AuthVerdict{403, "Forbidden (Calls Between Nodes Come Over TLS)"}, now);
      layer_.respond(
          id,
          sip::make_rejection(
              request, sip::Rejection{403, "Forbidden (Calls Between Nodes Come Over TLS)", sip::HeaderId::Other, {}},
              token()),
          now);
      return;
    }
    delegate_->on_request(id, request, from, now);
    return;
  }
  ++stats_.requests_received;
  if (request.method_id() == sip::Method::Options) {
    layer_.respond(id, sip::make_response(request, 200, {}, token()), now);  // a liveness probe
    return;
  }
  // The DHT-Op is looked up once: it says whether this is a client's flow or a Chord operation.
  const auto op = request.method_id() == sip::Method::Register ? request.extension_header("DHT-Op") : std::nullopt;
  if (op && sip::iequals(*op, kFlowOp)) {
    handle_flow(id, request, from, now);
    return;
  }
  if (!op) {
    ++stats_.rejected;
    sip::Rejection r{405, "Method Not Allowed", sip::HeaderId::Allow, "REGISTER, OPTIONS"};
    if (request.method_id() == sip::Method::Register)
      r = sip::Rejection{400, "Missing DHT-Op", sip::HeaderId::Other, {}};
    layer_.respond(id, sip::make_rejection(request, r, token()), now);
    return;
  }
  auto decoded = decode_request(request, cfg_.overlay);
  if (!decoded) {
    ++stats_.rejected;
    env_.log(LogLevel::Debug, "overlay: refused a request: " + decoded.error().reason);
    layer_.respond(id, sip::make_rejection(request, decoded.error(), token()), now);
    return;
  }
  // Nothing of a request reaches the Chord core (and so no routing table) before its sender is
  // authenticated. Refusals are not signed: a flood of them must not cost this node signatures.
  if (auth_ != nullptr) {
    if (AuthVerdict v = authenticate(request, &decoded->sender.id, now); !v.ok()) {
      ++stats_.unauthenticated;
      auth_->log_refusal(decoded->sender.id, from, v, now);
      layer_.respond(
          id, sip::make_rejection(request, sip::Rejection{v.status, v.reason, sip::HeaderId::Other, {}}, token()), now);
      return;
    }
  }
  chord_.on_request(id, *decoded, now);
}

void OverlayNode::on_response(sip::TransactionId id, const sip::Message& response, Instant now) {
  if (response.status() >= 200 && flow_outcome(id, &response, now)) return;
  if (response.status() < 200) {
    if (delegate_ && !outstanding_.contains(id)) delegate_->on_response(id, response, now);
    return;
  }
  const Outgoing* found = outstanding_.find(id);
  if (found == nullptr) {
    if (delegate_) delegate_->on_response(id, response, now);
    return;
  }
  const Outgoing out = *found;
  outstanding_.erase(id);
  ++stats_.responses_received;
  auto decoded = decode_response(response);
  if (!decoded) {
    env_.log(LogLevel::Debug, "overlay: unreadable response: " + decoded.error());
    chord_.on_failure(out.rid, now);
    return;
  }
  if (auth_ != nullptr && !accept_response(out, response, *decoded, now)) return;
  chord_.on_response(out.rid, *decoded, now);
}

bool OverlayNode::accept_response(const Outgoing& out, const sip::Message& response, const dht::Response& decoded,
                                  Instant now) {
  // The answer comes from the peer asked: a relayed answer names the peer that answered first in
  // its DHT-PeerID, but the hop signs it.
  (void)decoded;
  const int status = response.status();
  dht::NodeId responder = out.to;
  const AuthVerdict v = authenticate(response, out.to_known ? &out.to : nullptr, now, &responder);
  // One side lacked the other's certificate: the responder none for this node (436: ours was not
  // carried; refusals are not signed, and a forged 436 costs this node one more certificate sent,
  // no more), or this node none for the responder (it did not send it back). The request goes
  // again, once; sign_request then carries ours and asks for theirs as each side needs.
  const bool they_lacked = status == 436 && !out.carried_cert;
  const bool we_lacked = !they_lacked && !v.ok() && v.status == 436;
  if ((we_lacked || they_lacked) && !out.resent) {
    if (they_lacked) auth_->forget_told(responder);
    ++stats_.resent;
    if (auto pending = chord_.outstanding(out.rid)) {
      if (!send_request(out.rid, pending->to, pending->request, now, true)) chord_.on_failure(out.rid, now);
    }
    return false;
  }
  if (!v.ok()) {
    ++stats_.unauthenticated;
    auth_->log_refusal(responder, from_ != nullptr ? *from_ : Endpoint{}, v, now);
    // A peer's SIP layer refuses what it cannot take before any credentials are looked at (too
    // large, malformed, overloaded), and such refusals are never signed: the peer is alive, and
    // Chord hears the refusal with nothing in it to learn from. Any other answer that is not
    // authentic counts as the peer's failure.
    if (status == 400 || status == 413 || status == 500 || status == 503 || status == 513) {
      dht::Response bare;
      bare.status = dht::status_of(status);
      bare.reason = "Unsigned Refusal: " + std::string(response.reason());
      bare.responder = dht::Peer{out.to, from_ != nullptr ? *from_ : Endpoint{}};
      chord_.on_response(out.rid, bare, now);
    } else {
      chord_.on_failure(out.rid, now);
    }
    return false;
  }
  if (status == 428 || status == 436 || status == 437 || status == 438) {
    ++stats_.unauthenticated;
    env_.log(LogLevel::Warn, "security: " + responder.short_hex() + " refused this node's credentials: " +
                                 std::to_string(status) + " " + std::string(response.reason()));
    chord_.on_failure(out.rid, now);
    return false;
  }
  // It checked our request (its answer is Chord's): it holds our certificate from now on.
  if ((status >= 200 && status < 400) || status == 404) auth_->told(responder);
  return true;
}

void OverlayNode::fail(sip::TransactionId id, Instant now, bool hop_alive) {
  const Outgoing* found = outstanding_.find(id);
  if (found == nullptr) return;
  const dht::RequestId rid = found->rid;
  outstanding_.erase(id);
  chord_.on_failure(rid, now, hop_alive);
}

void OverlayNode::on_timeout(sip::TransactionId id, Instant now) {
  if (flow_outcome(id, nullptr, now)) return;
  if (delegate_ && !outstanding_.contains(id)) return delegate_->on_timeout(id, now);
  // A timeout in Proceeding came after 100 Trying: the route failed past this peer (RFC 3261
  // §16.8: a proxy treats it as a 408), not this peer. A broken connection is this peer's.
  fail(id, now, layer_.state_of(id) == sip::TransactionState::Proceeding);
}
void OverlayNode::on_transport_error(sip::TransactionId id, Instant now) {
  if (flow_outcome(id, nullptr, now)) return;
  if (delegate_ && !outstanding_.contains(id)) return delegate_->on_transport_error(id, now);
  fail(id, now, false);
}
void OverlayNode::on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) {
  if (auth_ != nullptr && link_peer_ == nullptr) return;  // as for the other call traffic (on_request)
  if (delegate_) delegate_->on_ack(id, ack, from, now);
}
void OverlayNode::on_stray_response(const sip::Message& response, const Endpoint& from, Instant now) {
  if (delegate_) delegate_->on_stray_response(response, from, now);
}

// ---- client flows -------------------------------------------------------------------------------

bool OverlayNode::register_flow(const Endpoint& relay, std::uint32_t reg_id, std::uint32_t expires_s, Instant now) {
  RequestFraming f;
  f.overlay = cfg_.overlay;
  const sip::TransactionLayer::Branch branch = layer_.new_branch();
  f.branch = branch.view();
  const std::string call_id = std::string(token().view()) + "@" + cfg_.overlay;
  f.call_id = call_id;
  const Hex64 from_tag = token();
  f.from_tag = from_tag.view();
  f.transport = relay.transport;
  FlowRegistration fr{chord_.table().self(), instance_, reg_id, expires_s};
  sip::Message m = encode_flow_request(fr, f);
  // Signed like every overlay request: the relay learns that the client holds its Node-ID. A relay
  // that granted a flow before holds our certificate, and we its: a refresh carries neither.
  if (auth_ != nullptr && relay.transport != Transport::Tls) {
    const dht::NodeId* known = nullptr;
    for (const auto& r : relays_known_) {
      if (r.addr.ip == relay.ip && r.addr.port == relay.port) known = &r.id;
    }
    (void)auth_->sign_request(m, known, now);
  }
  ++stats_.requests_sent;
  auto txn = layer_.send_request(m, relay, now, branch.view());
  if (!txn) return false;
  flow_out_[*txn] = reg_id;
  return true;
}

bool OverlayNode::ping_flow(const Endpoint& relay, Instant now) {
  // RFC 5626 §4.4.1 (RFC 5626 §3.5.1's framing): a double CRLF between messages on the stream;
  // the runtime hands the relay's single-CRLF pong to the peer, which tells the flows.
  (void)now;
  return env_.send(relay, "\r\n\r\n");
}

bool OverlayNode::flow_outcome(sip::TransactionId id, const sip::Message* response, Instant now) {
  const std::uint32_t* found = flow_out_.find(id);
  if (found == nullptr) return false;
  const std::uint32_t reg_id = *found;
  flow_out_.erase(id);
  if (flows_ == nullptr) return true;
  if (response == nullptr) {
    flows_->failed(reg_id, now);  // no answer: the relay is gone or unreachable
    return true;
  }
  ++stats_.responses_received;
  const int status = response->status();
  if (status == 503) {
    // A relay full of clients (or over a rate): RFC 3261 §21.5.4's Retry-After says when to come
    // back; without one, the relay's usual wait.
    std::uint32_t after = 300;
    if (auto ra = response->header(sip::HeaderId::RetryAfter)) {
      const std::string_view digits = ra->substr(0, ra->find_first_not_of("0123456789"));
      if (auto v = sip::parse_decimal(digits, 86400)) after = static_cast<std::uint32_t>(*v);
    }
    flows_->refused(reg_id, after, now);
    return true;
  }
  auto grant = decode_flow_response(*response);
  if (!grant) {
    env_.log(LogLevel::Info,
             "nat: flow " + std::to_string(reg_id) + " refused: " + std::to_string(status) + " " + grant.error());
    flows_->failed(reg_id, now);
    return true;
  }
  if (auth_ != nullptr) {
    dht::NodeId signer;
    const AuthVerdict v = authenticate(*response, &grant->relay.id, now, &signer);
    if (!v.ok()) {
      ++stats_.unauthenticated;
      auth_->log_refusal(grant->relay.id, from_ != nullptr ? *from_ : Endpoint{}, v, now);
      flows_->failed(reg_id, now);
      return true;
    }
  }
  if (std::none_of(relays_known_.begin(), relays_known_.end(), [&](const dht::Peer& r) { return r == grant->relay; }) &&
      relays_known_.size() < 16) {
    relays_known_.push_back(grant->relay);
  }
  std::vector<Endpoint> alternates;
  for (const auto& p : grant->alternates) {
    if (p.attach) continue;  // behind a NAT: no relay (nobody opens a flow to it)
    Endpoint e = p.addr;
    e.transport = flow_transport_;  // the client's flows all go the same way
    alternates.push_back(e);
  }
  flows_->registered(reg_id, grant->relay.id.hex(), grant->path, grant->expires_s, grant->flow_timer_s, now,
                     alternates);
  return true;
}

std::string OverlayNode::flow_uri(const nat::ClientFlow& flow) const {
  std::string uri = "<sip:" + flow.token + "@";
  chord_.table().self().addr.append_host_port(uri);
  // Requests that follow it go where the flow is: a client without UDP (or with TLS flows in an
  // overlay that authenticates its peers) is reached, and sends, over its connection.
  if (flow.flow.transport == Transport::Tcp) uri += ";transport=tcp";
  if (flow.flow.transport == Transport::Tls) uri += ";transport=tls";
  uri += ";lr;ob>";
  return uri;
}

void OverlayNode::handle_flow(sip::TransactionId id, const sip::Message& request, const Endpoint& from, Instant now) {
  auto refuse = [&](int status, std::string reason, sip::HeaderId header = sip::HeaderId::Other,
                    std::string value = {}) {
    ++stats_.rejected;
    layer_.respond(
        id, sip::make_rejection(request, sip::Rejection{status, std::move(reason), header, std::move(value)}, token()),
        now);
  };
  if ((relay_ == nullptr && relay_pending_) || (relay_ != nullptr && !chord_.joined())) {
    return refuse(503, "Service Unavailable (Not In The Ring Yet)", sip::HeaderId::RetryAfter, "5");
  }
  if (relay_ == nullptr) return refuse(403, "Forbidden (This Node Relays No Clients)");
  auto fr = decode_flow_request(request, cfg_.overlay);
  if (!fr) {
    ++stats_.rejected;
    layer_.respond(id, sip::make_rejection(request, fr.error(), token()), now);
    return;
  }
  // The client proves the Node-ID it registers: a flow is never held for a Node-ID by anyone else.
  if (auth_ != nullptr) {
    if (AuthVerdict v = authenticate(request, &fr->client.id, now); !v.ok()) {
      ++stats_.unauthenticated;
      auth_->log_refusal(fr->client.id, from, v, now);
      return refuse(v.status, v.reason);
    }
  }
  const std::string flow_token(token().view());
  const auto admitted =
      relay_->admit(fr->client.id.hex(), fr->instance, fr->reg_id, from, fr->expires_s, flow_token, now);
  if (!admitted.accepted) {
    ++stats_.flows_refused;
    env_.log(LogLevel::Info, "nat: refused a flow from " + fr->client.id.short_hex() + " (" + from.to_string() +
                                 "): " + std::to_string(relay_->clients()) + " clients already");
    return refuse(503, "Service Unavailable (Relay Full)", sip::HeaderId::RetryAfter,
                  std::to_string(admitted.retry_after_s));
  }
  ++stats_.flows_accepted;
  ++stats_.responses_sent;
  sip::Message m;
  if (fr->expires_s == 0) {
    m = sip::make_response(request, 200, "OK", token());
  } else {
    FlowGrant g;
    g.relay = chord_.table().self();
    g.path = flow_uri(*admitted.flow);
    g.expires_s = admitted.expires_s;
    g.flow_timer_s = is_reliable(from.transport) ? relay_->config().stream_flow_timer_s : relay_->config().flow_timer_s;
    const auto& succ = chord_.table().successors();
    g.alternates.assign(succ.begin(),
                        succ.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(succ.size(), 4)));
    m = encode_flow_response(request, g, cfg_.overlay, token());
  }
  if (auth_ != nullptr && !came_over_tls(request)) auth_->sign_response(m, request, now);
  layer_.respond(id, m, now);
}

}  // namespace p2psip::overlay
