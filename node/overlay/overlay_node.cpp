#include "node/overlay/overlay_node.hpp"

#include "node/core/hex.hpp"
#include "node/overlay/codec.hpp"

namespace p2psip::overlay {

Duration effective_hop_timeout(const OverlayConfig& config) {
  if (config.hop_timeout) return *config.hop_timeout;
  return sip::non_invite_trying_deadline(config.timers) + config.timers.t1 * 4;
}

namespace {
sip::TimerConfig overlay_timers(const OverlayConfig& config) {
  sip::TimerConfig t = config.timers;
  t.non_invite_silence = effective_hop_timeout(config);
  return t;
}
}  // namespace

OverlayNode::OverlayNode(dht::Peer self, OverlayConfig config, Environment& env)
    : cfg_(std::move(config)),
      env_(env),
      layer_(env, *this, overlay_timers(cfg_), cfg_.limits),
      chord_(std::move(self), cfg_.chord, *this, env),
      peer_limits_(cfg_.peer_rate) {}

std::string OverlayNode::token() {
  return hex64(env_.random());
}

void OverlayNode::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  layer_.receive_datagram(bytes, from, now);
}
void OverlayNode::receive(const sip::Message& m, const Endpoint& from, Instant now) {
  layer_.receive(m, from, now);
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

void OverlayNode::send(dht::RequestId id, const dht::Peer& to, const dht::Request& r, Instant now) {
  RequestFraming f;
  f.overlay = cfg_.overlay;
  f.branch = layer_.make_branch();
  f.call_id = token() + "@" + cfg_.overlay;
  f.from_tag = token();
  // Over UDP links, large bodies (replication, hand-over) still go over TCP.
  std::size_t body_estimate = 0;
  for (const auto& rec : r.records) body_estimate += rec.name.size() + rec.value.size() + rec.owner.size() + 40;
  f.transport = cfg_.link_transport;
  if (f.transport == Transport::Udp && body_estimate > cfg_.udp_body_limit) f.transport = Transport::Tcp;
  sip::Message m = encode_request(r, f);
  Endpoint dest = to.addr;
  dest.transport = f.transport;
  ++stats_.requests_sent;
  if (f.transport == Transport::Tcp) ++stats_.messages_sent_tcp;
  sending_ = true;
  sip::TransactionId txn = layer_.send_request(m, dest, now);
  sending_ = false;
  if (failed_during_send_.erase(txn) > 0) {
    chord_.on_failure(id, now);  // the transport refused at once
    return;
  }
  outstanding_[txn] = id;
}

void OverlayNode::reply(dht::ReplyHandle handle, const dht::Response& r, Instant now) {
  const sip::Message* request = layer_.request_of(handle);
  if (request == nullptr) return;  // the transaction is gone (RFC 4320: no answer without one)
  ++stats_.responses_sent;
  layer_.respond(handle, encode_response(*request, r, cfg_.overlay, token()), now);
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
    delegate_->on_request(id, request, from, now);
    return;
  }
  ++stats_.requests_received;
  if (request.method_id() == sip::Method::Options) {
    layer_.respond(id, sip::make_response(request, 200, {}, token()), now);  // a liveness probe
    return;
  }
  if (request.method_id() != sip::Method::Register || !request.header("DHT-Op")) {
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
  chord_.on_request(id, *decoded, now);
}

void OverlayNode::on_response(sip::TransactionId id, const sip::Message& response, Instant now) {
  if (response.status() < 200) {
    if (delegate_ && outstanding_.count(id) == 0) delegate_->on_response(id, response, now);
    return;
  }
  auto it = outstanding_.find(id);
  if (it == outstanding_.end()) {
    if (delegate_) delegate_->on_response(id, response, now);
    return;
  }
  dht::RequestId rid = it->second;
  outstanding_.erase(it);
  ++stats_.responses_received;
  auto decoded = decode_response(response);
  if (!decoded) {
    env_.log(LogLevel::Debug, "overlay: unreadable response: " + decoded.error());
    chord_.on_failure(rid, now);
    return;
  }
  chord_.on_response(rid, *decoded, now);
}

void OverlayNode::fail(sip::TransactionId id, Instant now) {
  if (sending_) {
    failed_during_send_.insert(id);
    return;
  }
  auto it = outstanding_.find(id);
  if (it == outstanding_.end()) return;
  dht::RequestId rid = it->second;
  outstanding_.erase(it);
  chord_.on_failure(rid, now);
}

void OverlayNode::on_timeout(sip::TransactionId id, Instant now) {
  if (delegate_ && !sending_ && outstanding_.count(id) == 0) return delegate_->on_timeout(id, now);
  fail(id, now);
}
void OverlayNode::on_transport_error(sip::TransactionId id, Instant now) {
  if (delegate_ && !sending_ && outstanding_.count(id) == 0) return delegate_->on_transport_error(id, now);
  fail(id, now);
}
void OverlayNode::on_ack(sip::TransactionId id, const sip::Message& ack, const Endpoint& from, Instant now) {
  if (delegate_) delegate_->on_ack(id, ack, from, now);
}
void OverlayNode::on_stray_response(const sip::Message& response, const Endpoint& from, Instant now) {
  if (delegate_) delegate_->on_stray_response(response, from, now);
}

}  // namespace p2psip::overlay
