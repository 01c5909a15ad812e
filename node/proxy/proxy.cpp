// The UA side's stateful proxy (RFC 3261 §16): the part of UaSide that carries calls between local
// phones and other nodes. See node/proxy/ua_side.hpp for the behaviour in outline.
#include <algorithm>
#include <cctype>

#include "core/hex.hpp"
#include "node/proxy/ua_side.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::proxy {

using sip::HeaderId;
using sip::Message;

namespace {

using sip::uri_endpoint;

bool same_host_port(const Endpoint& a, const Endpoint& b) {
  return a.ip == b.ip && a.port == b.port;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Every Route value of `m` in order, each as "<uri>;params" (several per field are split), and the
/// Route fields removed. nullopt when one is malformed.
std::optional<std::vector<std::string>> take_routes(Message& m) {
  std::vector<sip::NameAddress> parsed;
  bool ok = true;
  m.for_each(HeaderId::Route, [&](std::string_view v) { ok = ok && sip::parse_name_address_list(v, parsed, false); });
  if (!ok) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(parsed.size());
  for (const auto& na : parsed) out.push_back("<" + std::string(na.uri.text) + ">" + std::string(na.params.raw));
  m.remove_all(HeaderId::Route);
  return out;
}

std::optional<sip::Uri> route_uri(const std::string& route, std::string& storage) {
  storage = route;
  auto na = sip::parse_name_address(storage);
  if (!na) return std::nullopt;
  return na->uri;
}

/// RFC 3261 §16.7 step 6: any 6xx wins, otherwise the lowest class.
int rank(int status) {
  return status >= 600 ? 0 : status / 100;
}

}  // namespace

sip::TransactionLayer& UaSide::layer(Side s) {
  return s == Side::Ua ? layer_ : overlay_.transactions();
}

Transport UaSide::call_transport() const {
  // Calls between nodes are overlay traffic like the rest, and must be authenticated: a node that
  // authenticates its peers carries them over TLS whatever its overlay links use (signing every
  // request and response of a dialog would need more), and takes them only from TLS links.
  return overlay_.authenticator() != nullptr ? Transport::Tls : overlay_.config().link_transport;
}

Endpoint UaSide::own_address(Side s) const {
  if (s == Side::Ua) return cfg_.ua_address;
  Endpoint e = overlay_.chord().table().self().addr;
  e.transport = call_transport();
  return e;
}

bool UaSide::is_own(const sip::Uri& uri) const {
  if (uri.user.empty() && lower(uri.host) == lower(cfg_.registrar.domain)) return true;  // a preloaded "sip:OVERLAY;lr"
  auto ep = uri_endpoint(uri);
  return ep && (same_host_port(*ep, own_address(Side::Ua)) || same_host_port(*ep, own_address(Side::Overlay)));
}

std::optional<std::string> UaSide::overlay_aor(const sip::Uri& uri) const {
  if (!uri.is_sip() || uri.user.empty()) return std::nullopt;
  bool ours = lower(uri.host) == lower(cfg_.registrar.domain);
  if (!ours) {
    auto ep = uri_endpoint(uri);
    ours = ep && (same_host_port(*ep, own_address(Side::Ua)) || same_host_port(*ep, own_address(Side::Overlay)));
  }
  if (!ours) return std::nullopt;
  return "sip:" + sip::unescape(uri.user) + "@" + lower(cfg_.registrar.domain);
}

// ---- requests ------------------------------------------------------------------------------------

void UaSide::request(Side side, sip::TransactionId id, const Message& req, const Endpoint& from, Instant now) {
  auto reject = [&](int status, const std::string& reason, HeaderId extra = HeaderId::Other, std::string value = {}) {
    ++stats_.requests_rejected;
    layer(side).respond(id, sip::make_rejection(req, sip::Rejection{status, reason, extra, std::move(value)}, tag()),
                        now);
  };
  if (req.method_id() == sip::Method::Cancel) return cancel(side, id, req, now);
  if (side == Side::Overlay && req.method_id() == sip::Method::Register) {
    return reject(400, "Missing DHT-Op");  // the overlay's REGISTERs carry one; phones register at the UA side
  }
  Message fwd = req;
  auto routes = take_routes(fwd);
  if (!routes) return reject(400, "Malformed Route");
  std::string storage;
  bool routed_here = drop_own_routes(*routes, storage);  // it follows a dialog's route set
  // RFC 5626 §5.3.1: as a relay peer, a Route naming one of this node's client flows. From anyone
  // but the client the request goes down the flow; from the client (over its flow) it goes on.
  const nat::ClientFlow* flow = nullptr;
  bool from_flow = false;
  if (!routes->empty()) {
    bool named = false;
    flow = flow_of_route(routes->front(), storage, named);
    if (named && flow == nullptr) return reject(430, "Flow Failed");
    if (flow != nullptr) {
      routes->erase(routes->begin());
      routed_here = true;
      from_flow = side == Side::Overlay && same_host_port(from, flow->flow);
      if (from_flow) {
        flow = nullptr;
        drop_own_routes(*routes, storage);  // the rest of the route set may name this node again
      }
    }
  }
  // Views into `req`, which stays as it is (fwd's buffer moves as headers are added to it).
  auto ruri = sip::parse_uri(req.request_uri());
  if (!ruri) return reject(400, "Malformed Request-URI");
  if (routes->empty() && ruri->user.empty() && is_own(*ruri)) return answer_self(side, id, req, now);
  // §16.3: Max-Forwards (483 at 0) and Proxy-Require (420 for every extension: none is supported).
  if (auto rej = sip::check_forwardable(req)) {
    ++stats_.requests_rejected;
    layer(side).respond(id, sip::make_rejection(req, *rej, tag()), now);
    return;
  }
  if (auto pr = req.header(HeaderId::ProxyRequire))
    return reject(420, "Bad Extension", HeaderId::Unsupported, std::string(*pr));
  std::uint64_t mf = 70;
  if (auto m = req.header(HeaderId::MaxForwards)) mf = sip::parse_uint_header(*m, 255).value_or(70);
  fwd.set_header(HeaderId::MaxForwards, std::to_string(mf == 0 ? 0 : mf - 1));
  for (const auto& r : *routes) fwd.add_header(HeaderId::Route, r);

  // §22.3: with digest authentication on, a phone's request is sent on only with credentials of
  // its From user, unless it is in a dialog that such a request set up: a To tag, and a Route
  // naming this node (the route set its Record-Route made). A To tag alone proves nothing; without
  // the route such a request would reach any user. ACK and CANCEL cannot be challenged (§22.1).
  if (side == Side::Ua && digest_ && req.method_id() != sip::Method::Ack) {
    auto to = sip::parse_name_address(req.header(HeaderId::To).value_or(""));
    if (!to || !to->params.has("tag") || !routed_here) {
      auto from_na = sip::parse_name_address(req.header(HeaderId::From).value_or(""));
      auto from_aor = from_na ? overlay_aor(from_na->uri) : std::nullopt;
      if (!from_aor) return reject(403, "Forbidden (From Is Not A User Of " + cfg_.registrar.domain + ")");
      if (!authenticated(id, req, from, HeaderId::ProxyAuthorization, Registrar::user_of(*from_aor), now)) {
        ++stats_.requests_rejected;
        return;
      }
    }
  }
  if (calls() >= cfg_.max_calls) {
    return reject(503, "Too Many Requests In Progress", HeaderId::RetryAfter, std::to_string(cfg_.retry_after_s));
  }
  std::uint64_t cid = next_call_++;
  Call& call = calls_[cid];
  call.side = side;
  call.server = id;
  call.request = req;
  call.from = from;
  call.invite = req.method_id() == sip::Method::Invite;
  by_server_[{side, id}] = cid;
  ++stats_.proxied;

  if (flow != nullptr) {
    ++stats_.relayed;
    return add_branch(cid, Side::Overlay, flow->flow, std::move(fwd), BranchKind{true, flow, {}}, now);
  }
  if (!routes->empty()) {
    // A loose route beyond this node: another node, named in the dialog's route set. Only local
    // phones (and a relay's clients over their flows) may send through this node; for anyone else
    // in the overlay that would make it an open relay.
    if (side == Side::Overlay && !from_flow) {
      return answer_call(cid, 403, "Forbidden (No Relaying Through This Node)", now);
    }
    auto next = route_uri(routes->front(), storage);
    auto ep = next ? uri_endpoint(*next) : std::nullopt;
    if (!ep) return answer_call(cid, 404, "Not Found (Route Is Not An Address)", now);
    return add_branch(cid, Side::Overlay, *ep, std::move(fwd), BranchKind{true, nullptr, {}}, now);
  }
  if (auto aor = overlay_aor(*ruri)) {
    if (side == Side::Overlay) return fork_local(cid, *aor, std::move(fwd), now);  // "deliver to your devices"
    // A local phone calls a user of the overlay: find the nodes that serve the user.
    call.looking_up = true;
    ++stats_.lookups;
    overlay_.chord().route(
        dht::RouteOp::Fetch, dht::NodeId::hash(*aor), std::nullopt,
        [this, cid, aor = *aor, now](const dht::RouteResult& res) { lookup_done(cid, aor, res, now + res.latency); },
        now);
    return;
  }
  // In a dialog, the Request-URI is a phone's contact: only phones this node serves are reached.
  auto ep = uri_endpoint(*ruri);
  if (ep && phone_reachable(*ep)) return add_branch(cid, Side::Ua, *ep, std::move(fwd), BranchKind{}, now);
  answer_call(cid, 404, "Not Found (Not A User Of " + cfg_.registrar.domain + ")", now);
}

void UaSide::answer_self(Side side, sip::TransactionId id, const Message& req, Instant now) {
  if (req.method_id() != sip::Method::Options) {
    ++stats_.requests_rejected;
    layer(side).respond(id, sip::make_response(req, 404, "Not Found (No User In Request-URI)", tag()), now);
    return;
  }
  // OPTIONS to the node itself: softphones use it as a keep-alive.
  Message ok = sip::make_response(req, 200, {}, tag());
  ok.add_header(HeaderId::Allow,
                "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, NOTIFY, REFER, "
                "UPDATE, INFO, PRACK");
  layer(side).respond(id, ok, now);
}

void UaSide::lookup_done(std::uint64_t cid, const std::string& aor, const dht::RouteResult& res, Instant now) {
  auto it = calls_.find(cid);
  if (it == calls_.end()) return;
  Call& call = it->second;
  call.looking_up = false;
  if (call.final_sent) return finish_if_done(cid, now);  // cancelled while looking up
  if (res.status != dht::Status::Ok && res.status != dht::Status::NotFound) {
    ++stats_.lookups_failed;
    return answer_call(cid, 480, "Temporarily Unavailable (Overlay Lookup Failed)", now);
  }
  std::vector<RegistrationEntry> entries;
  for (const auto& rec : res.records) {
    if (auto e = decode_registration(rec.value)) entries.push_back(*e);
  }
  if (entries.empty()) {
    ++stats_.lookups_not_found;
    return answer_call(cid, 404, "Not Found (" + aor + " Is Not Registered)", now);
  }
  Message fwd = lookup_request(call);
  const dht::NodeId self = overlay_.chord().table().self().id;
  for (auto& e : entries) {
    if (e.node.id == self) {
      fork_local(cid, aor, fwd, now);
    } else if (e.via.empty() || !add_relay_branch(cid, fwd, std::move(e.via), now)) {
      // Straight to the node (not along the ring).
      add_branch(cid, Side::Overlay, e.node.addr, fwd, BranchKind{true, nullptr, {}}, now);
    }
    if (calls_.count(cid) == 0) return;
  }
  finish_if_done(cid, now);
}

Message UaSide::lookup_request(const Call& call) const {
  Message fwd = call.request;  // rebuilt as request() prepared it: no Route left, Max-Forwards one less
  fwd.remove_all(HeaderId::Route);
  std::uint64_t mf = sip::parse_uint_header(fwd.header(HeaderId::MaxForwards).value_or("70"), 255).value_or(70);
  fwd.set_header(HeaderId::MaxForwards, std::to_string(mf == 0 ? 0 : mf - 1));
  return fwd;
}

bool UaSide::add_relay_branch(std::uint64_t cid, Message req, std::vector<std::string> via, Instant now) {
  while (!via.empty()) {
    std::string route = std::move(via.front());
    via.erase(via.begin());
    auto ep = via_endpoint(route);
    if (!ep) continue;
    if (same_host_port(*ep, own_address(Side::Overlay))) {
      // The client's relay is this node: down the flow from here.
      std::string storage;
      bool named = false;
      const nat::ClientFlow* flow = flow_of_route(route, storage, named);
      if (flow == nullptr) continue;  // gone here (what a relay would answer 430): the next
      ++stats_.relayed;
      add_branch(cid, Side::Overlay, flow->flow, std::move(req), BranchKind{true, flow, std::move(via)}, now);
      return true;
    }
    // Calls between nodes go as they always do (TLS where peers are authenticated); the relay
    // takes them on down the client's flow however that flow is made.
    if (overlay_.authenticator() != nullptr) ep->transport = call_transport();
    req.add_header_front(HeaderId::Route, route);
    ++stats_.via_relay;
    add_branch(cid, Side::Overlay, *ep, std::move(req), BranchKind{true, nullptr, std::move(via)}, now);
    return true;
  }
  return false;
}

bool UaSide::names_own_flow(const sip::Uri& uri) const {
  if (overlay_.relay() == nullptr || uri.user.empty() || !uri.has_param("ob")) return false;
  auto ep = uri_endpoint(uri);
  return ep && same_host_port(*ep, own_address(Side::Overlay));
}

const nat::ClientFlow* UaSide::flow_of_route(const std::string& route, std::string& storage, bool& named) const {
  named = false;
  if (overlay_.relay() == nullptr) return nullptr;  // no parse where no flow can be named
  auto uri = route_uri(route, storage);
  named = uri && names_own_flow(*uri);
  return named ? overlay_.relay()->by_token(std::string(uri->user)) : nullptr;
}

void UaSide::fork_local(std::uint64_t cid, const std::string& aor, Message req, Instant now) {
  auto bindings = registrar_.bindings(aor, now);
  std::size_t added = 0;
  for (const auto& b : bindings) {
    // On this host, the contact (or, for a contact by name, where it registered from); off it,
    // always where it registered from (its NAT binding, if any; never a host the Contact names).
    std::optional<Endpoint> ep = b.source;
    if (cfg_.phones_on_loopback) {
      auto uri = sip::parse_uri(b.contact);
      if (auto c = uri ? uri_endpoint(*uri) : std::nullopt; c && c->ip.is_loopback()) ep = c;
      if (!ep->ip.is_loopback()) continue;
    }
    Message m = req;
    m.set_request_uri(b.contact);  // §16.5: the target's URI
    add_branch(cid, Side::Ua, *ep, std::move(m), BranchKind{}, now);
    ++added;
    if (calls_.count(cid) == 0) return;
  }
  if (added == 0) {
    auto it = calls_.find(cid);
    if (it != calls_.end() && it->second.branches.empty() && !it->second.looking_up) {
      answer_call(cid, 480, "Temporarily Unavailable (No Device Registered At This Node)", now);
    }
  }
}

void UaSide::add_branch(std::uint64_t cid, Side out, const Endpoint& dest, Message m, BranchKind kind, Instant now) {
  Call& call = calls_.at(cid);
  // §16.6 step 4 with RFC 5658: one Record-Route per interface the request crosses, so that the
  // dialog's later requests come back the same way whichever side they start from.
  auto rr = [](const Endpoint& e, Transport t) {
    return "<sip:" + e.host_port() +
           (t == Transport::Tcp   ? ";transport=tcp"
            : t == Transport::Tls ? ";transport=tls"
                                  : "") +
           ";lr>";
  };
  // Dialog-creating requests only: in a dialog the route set is already fixed (§12.2).
  auto to = sip::parse_name_address(call.request.header(HeaderId::To).value_or(""));
  if (to && !to->params.has("tag")) {
    if (kind.flow != nullptr) {
      // A relay names the flow: later requests of the dialog find it again, from either end (and
      // its own phone's side too, when the caller is one of its phones).
      if (call.side == Side::Ua)
        m.add_header_front(HeaderId::RecordRoute, rr(own_address(Side::Ua), call.from.transport));
      m.add_header_front(HeaderId::RecordRoute, overlay_.flow_uri(*kind.flow));
    } else {
      m.add_header_front(HeaderId::RecordRoute, rr(own_address(call.side), call.from.transport));
      if (out != call.side) m.add_header_front(HeaderId::RecordRoute, rr(own_address(out), dest.transport));
    }
  }
  // §16.6 step 8: our Via, with a new branch, on top.
  Endpoint me = own_address(out);
  m.add_header_front(HeaderId::Via, "SIP/2.0/" + std::string(transport_name(dest.transport)) + " " + me.host_port() +
                                        ";branch=" + layer(out).make_branch());
  std::size_t index = call.branches.size();
  call.branches.push_back(Branch{});
  Branch& b = call.branches.back();
  b.side = out;
  b.dest = dest;
  b.to_node = kind.to_node;
  b.flow = kind.flow != nullptr;
  b.via_left = std::move(kind.via_left);
  b.request = m;
  ++stats_.branches;
  auto sent = layer(out).send_request(m, dest, now);
  if (!sent) {  // the transport refused it at once: the branch has failed, as if unreachable
    fail_branch(cid, index, false, now);
    return;
  }
  const sip::TransactionId txn = *sent;
  calls_.at(cid).branches[index].txn = txn;
  by_client_[{out, txn}] = {cid, index};
  if (kind.to_node) {
    // A live node answers at once (100 Trying within 200 ms, RFC 3261 §17.2.1): silence for the
    // overlay's hop timeout means it is gone, and the caller hears 480 in seconds, not after
    // Timer B's 32. Through a client's relay with another left, sooner (relay_silence): the
    // other relay is asked then, and a late answer from this one still goes upstream.
    Duration wait = overlay::effective_hop_timeout(overlay_.config());
    if (!calls_.at(cid).branches[index].via_left.empty() && cfg_.relay_silence > Duration{0}) {
      wait = std::min(wait, cfg_.relay_silence);
    }
    Instant deadline = now + wait;
    calls_.at(cid).branches[index].silent_after = deadline;
    silent_branches_.insert({deadline, cid, index});
  }
}

void UaSide::cancel(Side side, sip::TransactionId id, const Message& cancel_req, Instant now) {
  auto invite = layer(side).find_invite_for_cancel(cancel_req);
  if (!invite) {
    layer(side).respond(id, sip::make_response(cancel_req, 481, "Call/Transaction Does Not Exist", tag()), now);
    return;
  }
  // §16.10: the CANCEL is answered at once; the INVITE's answer comes from the branches (487).
  layer(side).respond(id, sip::make_response(cancel_req, 200, {}, tag()), now);
  auto it = by_server_.find({side, *invite});
  if (it == by_server_.end()) return;
  std::uint64_t cid = it->second;
  Call& call = calls_.at(cid);
  if (call.final_sent) return;
  call.cancelled = true;
  ++stats_.cancels;
  if (call.looking_up) return answer_call(cid, 487, "Request Terminated", now);
  for (auto& b : call.branches) cancel_branch(call, b, now);
}

void UaSide::cancel_branch(Call& call, Branch& b, Instant now) {
  if (b.done || b.cancelled || !call.invite) return;
  if (b.status == 0) {  // §9.1: no CANCEL before a provisional response
    b.cancel_pending = true;
    return;
  }
  b.cancelled = true;
  b.cancel_pending = false;
  // §9.1: the CANCEL copies the INVITE's Request-URI, top Via, Call-ID, To, From, CSeq number
  // and Route, with CSeq method CANCEL.
  const Message& inv = b.request;
  Message c = Message::request("CANCEL", inv.request_uri());
  c.add_header(HeaderId::Via, inv.header(HeaderId::Via).value_or(""));  // ours: a field of its own
  c.add_header(HeaderId::MaxForwards, "70");
  c.add_header(HeaderId::From, inv.header(HeaderId::From).value_or(""));
  c.add_header(HeaderId::To, inv.header(HeaderId::To).value_or(""));
  c.add_header(HeaderId::CallId, inv.header(HeaderId::CallId).value_or(""));
  auto cseq = sip::parse_cseq(inv.header(HeaderId::CSeq).value_or(""));
  c.add_header(HeaderId::CSeq, std::to_string(cseq ? cseq->number : 1) + " CANCEL");
  inv.for_each(HeaderId::Route, [&](std::string_view v) { c.add_header(HeaderId::Route, v); });
  c.add_header(HeaderId::ContentLength, "0");
  // Its answer matches no branch and is dropped. A CANCEL that cannot leave changes nothing: the
  // INVITE's branch times out.
  (void)layer(b.side).send_request(c, b.dest, now);
}

// ---- responses -----------------------------------------------------------------------------------

void UaSide::on_response(sip::TransactionId id, const Message& response, Instant now) {
  this->response(Side::Ua, id, response, now);
}
void UaSide::on_timeout(sip::TransactionId id, Instant now) {
  branch_failed(Side::Ua, id, true, now);
}
void UaSide::on_transport_error(sip::TransactionId id, Instant now) {
  branch_failed(Side::Ua, id, false, now);
}
void UaSide::on_ack(sip::TransactionId, const Message& ack, const Endpoint& from, Instant now) {
  forward_ack(Side::Ua, ack, from, now);
}

void UaSide::response(Side side, sip::TransactionId id, const Message& resp, Instant now) {
  auto it = by_client_.find({side, id});
  if (it == by_client_.end()) return;  // a CANCEL's answer, or a late one for a finished request
  auto [cid, bi] = it->second;
  Call& call = calls_.at(cid);
  Branch& b = call.branches[bi];
  const int st = resp.status();
  if (b.silent_after != kInstantMax) {
    silent_branches_.erase({b.silent_after, cid, bi});
    b.silent_after = kInstantMax;
  }
  // §16.7 step 3: our own Via goes; the rest must be the request's, and are taken from it, so
  // that a phone that copied only its top Via still gets its answer home.
  Message up = resp;
  up.remove_all(HeaderId::Via);
  std::vector<std::string_view> vias;
  call.request.for_each(HeaderId::Via, [&](std::string_view v) { vias.push_back(v); });
  for (auto v = vias.rbegin(); v != vias.rend(); ++v) up.add_header_front(HeaderId::Via, *v);
  if (st < 200) {
    b.status = std::max(b.status, st);
    if (b.cancel_pending) cancel_branch(call, b, now);
    // §16.7 step 5: provisional responses other than 100 go upstream (the layer sends its own 100).
    if (st > 100 && !call.final_sent) layer(call.side).respond(call.server, up, now);
    return;
  }
  if (st < 300) {
    const bool first = !b.done;
    b.status = st;
    b.done = true;
    if (call.invite) {
      // §16.7 step 5: every 2xx to an INVITE goes upstream at once (RFC 6026: more may follow).
      if (!call.final_sent) ++stats_.calls_answered;
      call.final_sent = true;
      layer(call.side).respond(call.server, up, now);
      // §16.7 step 10: the other branches are cancelled.
      if (first) {
        for (auto& other : call.branches) cancel_branch(call, other, now);
      }
    } else if (!call.final_sent) {
      call.final_sent = true;
      layer(call.side).respond(call.server, up, now);
    }
    return finish_if_done(cid, now);
  }
  if (b.done) return;
  b.status = st;
  b.done = true;
  // The relay lost the client's flow (430), or cannot serve now (503): the next relay is asked.
  if ((st == 430 || st == 503) && try_next_relay(cid, bi, now)) return;
  branch_final(cid, bi, up, now);
}

bool UaSide::try_next_relay(std::uint64_t cid, std::size_t bi, Instant now) {
  Call& call = calls_.at(cid);
  if (call.branches[bi].via_left.empty() || call.cancelled || call.final_sent) return false;
  std::vector<std::string> via = std::move(call.branches[bi].via_left);
  call.branches[bi].via_left.clear();
  return add_relay_branch(cid, lookup_request(call), std::move(via), now);
}

void UaSide::branch_failed(Side side, sip::TransactionId id, bool timeout, Instant now) {
  auto it = by_client_.find({side, id});
  if (it == by_client_.end()) return;  // a server transaction's timer (H), or a CANCEL's
  auto [cid, bi] = it->second;
  fail_branch(cid, bi, timeout, now);
}

void UaSide::fail_branch(std::uint64_t cid, std::size_t bi, bool timeout, Instant now) {
  Call& call = calls_.at(cid);
  Branch& b = call.branches[bi];
  if (b.done) return;
  if (timeout && call.invite && layer(b.side).state_of(b.txn) == sip::TransactionState::Proceeding) {
    // Timer C (§16.6 step 11): ringing too long; the CANCEL's 487 ends the branch.
    b.status = std::max(b.status, 100);
    return cancel_branch(call, b, now);
  }
  ++stats_.branch_timeouts;
  b.done = true;
  if (try_next_relay(cid, bi, now)) return;
  int status = 480;
  std::string reason = "Callee's Node Does Not Answer";
  if (b.flow) {
    status = 430;  // RFC 5626 §5.3.1: the caller's node tries the client's other relay
    reason = "Flow Failed";
  } else if (!b.to_node) {
    status = timeout ? 408 : 480;
    reason = timeout ? "Request Timeout" : "Callee Unreachable";
  }
  b.status = status;
  branch_final(cid, bi, sip::make_response(call.request, status, reason, tag()), now);
}

void UaSide::branch_final(std::uint64_t cid, std::size_t bi, const Message& up, Instant now) {
  Call& call = calls_.at(cid);
  const int st = up.status();
  if (!call.best || rank(st) < rank(call.best->status())) call.best = up;
  if (st >= 600 && call.invite) {  // §16.7 step 10: a 6xx ends the search
    for (auto& other : call.branches) cancel_branch(call, other, now);
  }
  (void)bi;
  finish_if_done(cid, now);
}

void UaSide::finish_if_done(std::uint64_t cid, Instant now) {
  auto it = calls_.find(cid);
  if (it == calls_.end()) return;
  Call& call = it->second;
  if (call.looking_up) return;
  bool all_done = std::all_of(call.branches.begin(), call.branches.end(), [](const Branch& b) { return b.done; });
  if (!all_done) return;
  if (!call.final_sent) {
    call.final_sent = true;
    if (!call.best) {
      layer(call.side).respond(call.server, sip::make_response(call.request, 480, "Temporarily Unavailable", tag()),
                               now);
    } else if (call.best->status() == 503) {
      // §16.7 step 6: a 503 is not passed on (it would mean this proxy is overloaded).
      layer(call.side).respond(call.server, sip::make_response(call.request, 500, "Downstream Unavailable", tag()),
                               now);
    } else if (call.best->status() == 430 && call.side == Side::Ua) {
      // RFC 5626 §5.3.1: 430 is for the proxy that chose the flow; a phone hears 480.
      layer(call.side).respond(
          call.server, sip::make_response(call.request, 480, "Temporarily Unavailable (Flow Failed)", tag()), now);
    } else {
      layer(call.side).respond(call.server, *call.best, now);
    }
  }
  // An INVITE's context stays for 64*T1, for 2xx retransmissions (RFC 6026 Timers L and M).
  if (call.erase_at == kInstantMax) {
    call.erase_at = call.invite ? now + cfg_.timers.t1 * 64 : now;
    call_sweep_.insert({call.erase_at, cid});
    // Nothing is cancelled any more: what stays is what a retransmitted 2xx needs (request, ids).
    for (auto& b : call.branches) b.request = Message{};
    call.best.reset();
  }
  sweep_calls(now);
}

void UaSide::answer_call(std::uint64_t cid, int status, const std::string& reason, Instant now) {
  Call& call = calls_.at(cid);
  if (!call.final_sent) {
    call.final_sent = true;
    layer(call.side).respond(call.server, sip::make_response(call.request, status, reason, tag()), now);
  }
  finish_if_done(cid, now);
}

void UaSide::sweep_calls(Instant now) {
  while (!silent_branches_.empty() && std::get<0>(*silent_branches_.begin()) <= now) {
    auto [at, cid, bi] = *silent_branches_.begin();
    silent_branches_.erase(silent_branches_.begin());
    auto it = calls_.find(cid);
    if (it == calls_.end() || bi >= it->second.branches.size()) continue;
    Branch& b = it->second.branches[bi];
    b.silent_after = kInstantMax;
    if (b.done || b.status != 0) continue;
    b.cancelled = true;  // nothing to cancel at a node that is not there
    branch_failed(b.side, b.txn, true, now);
  }
  while (!call_sweep_.empty() && call_sweep_.begin()->first <= now) {
    std::uint64_t cid = call_sweep_.begin()->second;
    call_sweep_.erase(call_sweep_.begin());
    auto it = calls_.find(cid);
    if (it == calls_.end()) continue;
    by_server_.erase({it->second.side, it->second.server});
    for (const auto& b : it->second.branches) by_client_.erase({b.side, b.txn});
    for (const auto& b : it->second.branches) {
      if (b.silent_after != kInstantMax) silent_branches_.erase({b.silent_after, cid, &b - it->second.branches.data()});
    }
    calls_.erase(it);
  }
}

// ---- ACK for 2xx -----------------------------------------------------------------------------------

bool UaSide::drop_own_routes(std::vector<std::string>& routes, std::string& storage) const {
  // §16.4: the Route values that name this node are used up.
  bool any = false;
  while (!routes.empty()) {
    auto uri = route_uri(routes.front(), storage);
    // A client's flow here is no route used up: the caller decides where it leads.
    if (!uri || names_own_flow(*uri) || !is_own(*uri)) break;
    routes.erase(routes.begin());
    any = true;
  }
  return any;
}

void UaSide::forward_ack(Side side, const Message& ack, const Endpoint& from, Instant now) {
  // The ACK for a 2xx is a request of its own (§13.2.2.4, §16.11): forwarded statelessly along the
  // dialog's route set, and dropped when it has nowhere to go.
  Message m = ack;
  auto routes = take_routes(m);
  if (!routes) return;
  std::string storage;
  std::optional<Endpoint> dest;
  bool from_flow = false;
  drop_own_routes(*routes, storage);
  if (!routes->empty()) {  // as a relay peer: down a client's flow, or on from it
    bool named = false;
    const nat::ClientFlow* flow = flow_of_route(routes->front(), storage, named);
    if (named && flow == nullptr) return;
    if (flow != nullptr) {
      routes->erase(routes->begin());
      from_flow = side == Side::Overlay && same_host_port(from, flow->flow);
      if (!from_flow) dest = flow->flow;
      drop_own_routes(*routes, storage);
    }
  }
  std::uint64_t mf = sip::parse_uint_header(m.header(HeaderId::MaxForwards).value_or("70"), 255).value_or(70);
  if (mf == 0) return;
  m.set_header(HeaderId::MaxForwards, std::to_string(mf - 1));
  for (const auto& r : *routes) m.add_header(HeaderId::Route, r);
  Side out = Side::Ua;
  if (dest) {
    out = Side::Overlay;
  } else if (!routes->empty()) {
    if (side == Side::Overlay && !from_flow) return;  // no relaying for the overlay
    auto next = route_uri(routes->front(), storage);
    dest = next ? uri_endpoint(*next) : std::nullopt;
    out = Side::Overlay;
  } else if (auto ruri = sip::parse_uri(m.request_uri())) {
    dest = uri_endpoint(*ruri);
    if (dest && !phone_reachable(*dest)) dest.reset();
  }
  if (!dest) return;
  // §16.11: a stateless element's branch is derived from the request, so a retransmission gets
  // the same one.
  auto via = sip::top_via(ack);
  std::uint64_t h = 1469598103934665603ull;
  for (char c : via ? via->branch() : std::string_view()) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  m.add_header_front(HeaderId::Via, "SIP/2.0/" + std::string(transport_name(dest->transport)) + " " +
                                        own_address(out).host_port() + ";branch=z9hG4bK" + hex64(h));
  ++stats_.acks_forwarded;
  layer(out).send_stateless(m, *dest);
  (void)now;
}

}  // namespace p2psip::proxy
