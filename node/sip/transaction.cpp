#include "node/sip/transaction.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "core/hex.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"

namespace p2psip::sip {
namespace {

constexpr std::string_view kMagicCookie = "z9hG4bK";

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

std::string_view tag_of(std::optional<std::string_view> header) {
  if (!header) return {};
  auto na = parse_name_address(*header);
  if (!na) return {};
  return na->params.get("tag").value_or(std::string_view());
}

/// A response whose top Via points at a broadcast or multicast address (RFC 4475 §3.3.10).
bool forbidden_destination_via(const Message& response) {
  auto via = top_via(response);
  return via && forbidden_destination(*via);
}

std::string_view cseq_method(const Message& m) {
  auto cseq = m.header(HeaderId::CSeq);
  if (!cseq) return {};
  auto parsed = parse_cseq(*cseq);
  return parsed ? parsed->method : std::string_view();
}

}  // namespace

TransactionLayer::Key& TransactionLayer::Key::append(std::string_view text) {
  // An empty view may carry a null pointer, which memcpy must never be given, even for 0 bytes.
  if (text.empty()) return *this;
  if (!on_heap_ && size_ + text.size() <= kInline) {
    std::memcpy(small_.data() + size_, text.data(), text.size());
    size_ = static_cast<std::uint8_t>(size_ + text.size());
    return *this;
  }
  if (!on_heap_) {
    heap_.reserve(size_ + text.size());
    heap_.assign(small_.data(), size_);
    on_heap_ = true;
  }
  heap_.append(text);
  return *this;
}

TransactionLayer::Key TransactionLayer::client_key(std::string_view branch, std::string_view method) {
  Key key;
  key.append(branch).append('|').append(method);
  return key;
}

std::string_view state_name(TransactionState s) {
  switch (s) {
    case TransactionState::Calling: return "Calling";
    case TransactionState::Trying: return "Trying";
    case TransactionState::Proceeding: return "Proceeding";
    case TransactionState::Accepted: return "Accepted";
    case TransactionState::Completed: return "Completed";
    case TransactionState::Confirmed: return "Confirmed";
    case TransactionState::Terminated: return "Terminated";
  }
  return "?";
}

TransactionLayer::TransactionLayer(Environment& env, TransactionUser& tu, TimerConfig timers, Limits limits)
    : env_(env), tu_(tu), cfg_(timers), limits_(limits), hash_seed_(env.secure_random() | 1) {}

// ---- key indexes --------------------------------------------------------------------------------------

std::uint64_t TransactionLayer::key_hash(std::string_view key) const {
  // Keyed per layer, so that nobody can choose branches that pile up in one run of the table.
  std::uint64_t h = hash_seed_ ^ (key.size() * 0x9e3779b97f4a7c15ULL);
  std::size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, key.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  std::uint64_t w = 0;
  if (i < key.size()) std::memcpy(&w, key.data() + i, key.size() - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 29;
  h *= hash_seed_;
  return h ^ (h >> 32);
}

std::uint64_t TransactionLayer::side_hash(std::string_view key, bool client) const {
  // Client and server keys share the index; equal keys of the two sides differ in the hash's low
  // bit, so that a match of hash and key is a match of side too.
  return key_hash(key) ^ static_cast<std::uint64_t>(client);
}

void TransactionLayer::index(Transaction& t, const Key& key, std::uint64_t hash) {
  t.key = key;
  t.hash = hash;
  index_.insert(hash, &t);
}

// ---- the timer queue ----------------------------------------------------------------------------------

void TransactionLayer::requeue(Transaction& t) {
  Instant at = kInstantMax;
  for (Instant d : t.due) at = std::min(at, d);
  timer_queue_.update(t, at, t.id);
}

Duration TransactionLayer::non_invite_trying_deadline() const {
  return sip::non_invite_trying_deadline(cfg_);
}

Duration non_invite_trying_deadline(const TimerConfig& cfg) {
  // RFC 4320 §4.1: the time a client's Timer E, starting at T1 and doubling, takes to be reset to T2.
  Duration elapsed{0};
  Duration interval = cfg.t1;
  while (interval < cfg.t2) {
    elapsed += interval;
    interval = std::min(interval * 2, cfg.t2);
  }
  return elapsed;
}

TransactionLayer::Branch TransactionLayer::new_branch() {
  Branch b;
  static_assert(kMagicCookie.size() + 16 == std::tuple_size_v<decltype(b.text)>);
  std::memcpy(b.text.data(), kMagicCookie.data(), kMagicCookie.size());
  write_hex64(b.text.data() + kMagicCookie.size(), env_.secure_random());
  return b;
}

TransactionLayer::Transaction& TransactionLayer::create(bool client, const Message& request, Message* take,
                                                        const Endpoint& peer, bool reliable, Instant now) {
  auto [id, created] = pool_.create();
  Transaction& t = *created;
  t.id = id;
  t.client = client;
  t.invite = request.method_id() == Method::Invite;
  t.reliable = reliable;
  t.peer = peer;
  t.created = now;
  // A non-INVITE client transaction only ever retransmits its serialized bytes; the parsed request
  // is kept where it is used: server transactions (responses are built from it) and INVITE
  // clients (the ACK for a non-2xx).
  if (client && !t.invite) {
    t.released = true;
  } else if (take != nullptr) {
    t.request = std::move(*take);
  } else {
    t.request = request;
  }
  return t;
}

void TransactionLayer::start_timer(Transaction& t, Timer timer, Duration after, Instant now) {
  int free_slot = -1;
  for (int i = 0; i < kTimerSlots; ++i) {
    if (t.which[i] == timer) {
      free_slot = i;  // restarted: replaces the pending one
      break;
    }
    if (free_slot < 0 && t.which[i] == kTimerCount) free_slot = i;
  }
  // Every state machine here runs at most kTimerSlots timers at once; a free slot always exists.
  if (free_slot < 0) return;
  t.which[free_slot] = timer;
  t.due[free_slot] = now + after;
  requeue(t);
}

void TransactionLayer::stop_timer(Transaction& t, Timer timer) {
  for (int i = 0; i < kTimerSlots; ++i) {
    if (t.which[i] == timer) {
      t.which[i] = kTimerCount;
      t.due[i] = kInstantMax;
      requeue(t);
      return;
    }
  }
}

bool TransactionLayer::transmit_once(Transaction& t, std::string&& bytes, Instant now, bool tell_tu) {
  return env_.send_owned(t.peer, std::move(bytes)) || transport_failed(t, now, tell_tu);
}

bool TransactionLayer::transmit(Transaction& t, const std::string& bytes, Instant now, bool tell_tu) {
  return env_.send(t.peer, bytes) || transport_failed(t, now, tell_tu);
}

void TransactionLayer::connection_lost(const Endpoint& peer, Instant now) {
  if (!is_reliable(peer.transport)) return;
  Busy busy(*this);
  // Ids first: the TU may start new transactions from its callbacks.
  SmallVector<TransactionId, 8> hit;
  pool_.for_each([&](TransactionId id, const Transaction& t) {
    if (t.client && t.reliable && t.state != TransactionState::Terminated && t.peer == peer) hit.push_back(id);
  });
  for (const TransactionId id : hit) {
    if (Transaction* t = find(id); t != nullptr && t->state != TransactionState::Terminated) {
      transport_failed(*t, now, true);
    }
  }
}

bool TransactionLayer::transport_failed(Transaction& t, Instant now, bool tell_tu) {
  // RFC 3261 §17.1.4, §17.2.4: the TU hears of it and the transaction ends. A send the TU asked
  // for reports it by its return value instead, after which the TU is never called about it.
  ++stats_.transport_errors;
  if (tell_tu) tu_.on_transport_error(t.id, now);
  terminate(t);
  return false;
}

void TransactionLayer::terminate(Transaction& t) {
  if (t.state == TransactionState::Terminated) return;
  t.state = TransactionState::Terminated;
  if (!t.key.empty()) index_.erase(t.hash, &t);
  for (int i = 0; i < kTimerSlots; ++i) {
    t.which[i] = kTimerCount;
    t.due[i] = kInstantMax;
  }
  requeue(t);
  dead_.push_back(t.id);
}

void TransactionLayer::collect_garbage() {
  if (depth_ != 0) return;  // a callback up the stack may still hold a reference to an ended one
  for (auto id : dead_) pool_.release(id);
  dead_.clear();
}

Endpoint TransactionLayer::response_destination(const Message& request, const Endpoint& from) const {
  return response_destination(top_via(request), from);
}

Endpoint TransactionLayer::response_destination(const std::optional<Via>& via, const Endpoint& from) const {
  // RFC 3261 §18.2.2 with RFC 3581: over a stream, the connection it came on; with rport, the source
  // address and port; otherwise the source address (the "received" address) at the sent-by port.
  if (is_reliable(from.transport)) return from;
  if (!via || via->rport) return from;
  Endpoint to = from;
  to.port = via->port.value_or(5060);
  return to;
}

TransactionLayer::Key TransactionLayer::server_key(const Message& request, bool for_ack) const {
  return server_key(request, top_via(request), for_ack);
}

TransactionLayer::Key TransactionLayer::server_key(const Message& request, const std::optional<Via>& via,
                                                   bool for_ack) const {
  std::string_view method = request.method();
  if (for_ack || request.method_id() == Method::Ack) method = "INVITE";
  Key key;
  if (via && via->rfc3261_branch()) {
    // RFC 3261 §17.2.3: branch, sent-by and method (ACK matches the INVITE).
    key.append("3|").append(via->branch()).append('|').append(lowercase(via->host));
    key.append(':').append(std::to_string(via->port.value_or(0))).append('|').append(method);
    return key;
  }
  // RFC 2543 matching: Request-URI, From tag, Call-ID, CSeq number, top Via, method. The To tag is
  // compared separately for ACK (it carries the tag of our response).
  auto cseq = parse_cseq(request.header(HeaderId::CSeq).value_or(""));
  key.append("2|").append(request.request_uri()).append("|").append(tag_of(request.header(HeaderId::From)));
  key.append("|").append(request.header(HeaderId::CallId).value_or(""));
  key.append("|").append(std::to_string(cseq ? cseq->number : 0));
  key.append("|").append(request.header(HeaderId::Via).value_or(""));
  key.append("|").append(method);
  return key;
}

std::string TransactionLayer::build_ack(const Transaction& t, const Message& response) const {
  // RFC 3261 §17.1.1.3: the ACK for a non-2xx final response.
  const Message& req = t.request;
  Message ack = Message::request("ACK", req.request_uri());
  auto via = req.header(HeaderId::Via);
  if (via) {
    auto first = parse_first_via(*via);
    // Only the top via-parm of the original request.
    std::string_view v = *via;
    if (first)
      v = v.substr(0, static_cast<std::size_t>(first->params.raw.data() + first->params.raw.size() - v.data()));
    ack.add_header(HeaderId::Via, v);
  }
  req.for_each(HeaderId::Route, [&](std::string_view r) { ack.add_header(HeaderId::Route, r); });
  ack.add_header(HeaderId::MaxForwards, "70");
  ack.add_header(HeaderId::From, req.header(HeaderId::From).value_or(""));
  ack.add_header(HeaderId::To, response.header(HeaderId::To).value_or(""));
  ack.add_header(HeaderId::CallId, req.header(HeaderId::CallId).value_or(""));
  auto cseq = parse_cseq(req.header(HeaderId::CSeq).value_or(""));
  ack.add_header(HeaderId::CSeq, std::to_string(cseq ? cseq->number : 0) + " ACK");
  return ack.serialize();
}

void TransactionLayer::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  const Busy busy(*this);
  auto parsed = parse_datagram(bytes, limits_);
  if (parsed) {
    receive(*parsed, from, now);
  } else {
    answer_malformed(bytes, parsed.error(), from);
  }
}

void TransactionLayer::answer_malformed(std::string_view raw, const ParseError& error, const Endpoint& from) {
  if (error.status == 413 || error.status == 513) ++stats_.oversize;
  bool is_ack = raw.substr(0, 4) == "ACK ";
  if (error.status == 0 || is_ack) {
    ++stats_.malformed_dropped;
    return;
  }
  auto text = make_error_response_raw(raw.substr(0, std::min(raw.size(), limits_.max_message_bytes)), error.status,
                                      error.reason);
  if (!text) {
    ++stats_.malformed_dropped;
    return;
  }
  ++stats_.malformed_answered;
  env_.send(from, *text);
}

void TransactionLayer::receive(const Message& message, Message* take, const Endpoint& from, Instant now) {
  const Busy busy(*this);
  if (message.is_response()) {
    ++stats_.responses_in;
    std::optional<Via> via;
    if (check_message(message, via)) {
      ++stats_.malformed_dropped;
    } else {
      // RFC 3261 §17.1.3: the top Via's branch and the CSeq method, in a Key (in place for every
      // branch this stack makes: every response is matched).
      const Key key = client_key(via ? via->branch() : std::string_view(), cseq_method(message));
      Transaction* t = find_key(key.view(), side_hash(key.view(), true));
      if (t == nullptr) {
        ++stats_.stray_responses;
        tu_.on_stray_response(message, from, now);
      } else {
        on_client_response(*t, message, now);
      }
    }
    return;
  }

  ++stats_.requests_in;
  // The top Via, parsed once (by the check) for matching, the response address and the received parameter.
  std::optional<Via> via;
  if (auto rejection = check_message(message, via)) {
    if (rejection->status != 0 && message.method_id() != Method::Ack) {
      ++stats_.malformed_answered;
      Message r = make_rejection(message, *rejection);
      send_stateless(r, response_destination(message, from));
    } else {
      ++stats_.malformed_dropped;
    }
    return;
  }

  if (message.method_id() == Method::Ack) {
    const Key key = server_key(message, via, true);
    Transaction* t = find_key(key.view(), side_hash(key.view(), false));
    if (t && key.view()[0] == '2' && tag_of(message.header(HeaderId::To)) != t->to_tag) t = nullptr;
    if (!t) {
      ++stats_.stray_acks;
      tu_.on_ack(0, message, from, now);
    } else if (t->state == TransactionState::Completed) {
      // RFC 3261 §17.2.1: the ACK for our non-2xx final response.
      t->state = TransactionState::Confirmed;
      stop_timer(*t, G);
      stop_timer(*t, H);
      if (t->reliable) {
        terminate(*t);
      } else {
        start_timer(*t, I, cfg_.t4, now);
      }
    } else if (t->state == TransactionState::Accepted) {
      tu_.on_ack(t->id, message, from, now);  // RFC 6026 §8.7
    } else {
      ++stats_.retransmissions_absorbed;
    }
    return;
  }

  const Key key = server_key(message, via, false);
  const std::uint64_t hash = side_hash(key.view(), false);  // for the lookup and the new transaction
  if (Transaction* existing = find_key(key.view(), hash)) {
    on_server_retransmission(*existing, message, from, now);
    return;
  }

  // RFC 3261 §18.2.1: note where the request really came from in the top Via. The edited value is
  // made before the transaction takes the request.
  std::string updated;
  if (via) {
    std::string_view host = via->host;
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    std::string ip;
    from.ip.append_to(ip);
    const bool add_received = host != ip && !via->has_received;
    // RFC 3581 §4: an empty rport is filled with the source port.
    const bool fill_rport = via->rport && via->rport->empty();
    if (add_received || fill_rport) {
      std::string_view value = *message.header(HeaderId::Via);
      auto params_at = static_cast<std::size_t>(via->params.raw.data() - value.data());
      updated.reserve(value.size() + ip.size() + 24);
      updated.append(value.substr(0, params_at));
      if (fill_rport) {
        via->params.append_without(updated, "rport");
      } else {
        updated.append(via->params.raw);
      }
      if (add_received) updated.append(";received=").append(ip);
      if (fill_rport) {
        char port[8];
        updated.append(";rport=").append(
            port, static_cast<std::size_t>(std::to_chars(port, port + sizeof port, from.port).ptr - port));
      }
      updated.append(value.substr(params_at + via->params.raw.size()));
    }
  }
  Transaction& t = create(false, message, take, response_destination(via, from), is_reliable(from.transport), now);
  const TransactionId id = t.id;
  if (!updated.empty()) {
    // Room for exactly the edit: the request lives as long as the transaction.
    t.request.reserve_extra(updated.size());
    t.request.set_header(HeaderId::Via, updated);
  }
  index(t, key, hash);
  if (t.invite) {
    t.state = TransactionState::Proceeding;
    start_timer(t, Trying100, cfg_.invite_trying_delay, now);
  } else {
    t.state = TransactionState::Trying;
    start_timer(t, Trying100, non_invite_trying_deadline(), now);
    // Not an RFC timer: a TU that never answers must not hold the transaction forever. By 64*T1
    // the client has given up (Timer F).
    start_timer(t, Lifetime, cfg_.t1 * 64, now);
  }
  tu_.on_request(id, t.request, from, now);
}

void TransactionLayer::on_server_retransmission(Transaction& t, const Message& request, const Endpoint& from,
                                                Instant now) {
  (void)request;
  (void)from;
  ++stats_.retransmissions_absorbed;
  bool replay = false;
  switch (t.state) {
    case TransactionState::Proceeding:  // RFC 3261 §17.2.1 / §17.2.2: the last provisional again
    case TransactionState::Completed:   // the final response again
      replay = !t.response_bytes.empty();
      break;
    default: break;  // Trying, Accepted (RFC 6026 §7.1), Confirmed: absorbed
  }
  if (replay) {
    ++stats_.retransmissions_sent;
    transmit(t, t.response_bytes, now);
  }
}

void TransactionLayer::on_client_response(Transaction& t, const Message& r, Instant now) {
  const int code = r.status();
  using S = TransactionState;
  if (t.invite) {
    switch (t.state) {
      case S::Calling:
      case S::Proceeding:
        stop_timer(t, A);
        stop_timer(t, B);
        if (code < 200) {
          t.state = S::Proceeding;
          start_timer(t, C, cfg_.timer_c, now);  // each provisional resets Timer C
        } else if (code < 300) {
          stop_timer(t, C);
          // RFC 6026 §8.4: Accepted, so that 2xx retransmissions and forks still reach the TU.
          t.state = S::Accepted;
          start_timer(t, M, cfg_.t1 * 64, now);
        } else {
          stop_timer(t, C);
          t.state = S::Completed;
          t.ack_bytes = build_ack(t, r);
          if (!transmit(t, t.ack_bytes, now)) return;
          if (t.reliable) {
            terminate(t);
          } else {
            start_timer(t, D, cfg_.timer_d, now);
          }
        }
        tu_.on_response(t.id, r, now);
        return;
      case S::Accepted:
        if (code >= 200 && code < 300) tu_.on_response(t.id, r, now);
        return;
      case S::Completed:
        if (code >= 300) {
          ++stats_.retransmissions_absorbed;
          ++stats_.retransmissions_sent;
          transmit(t, t.ack_bytes, now);  // RFC 3261 §17.1.1.2: every retransmitted final gets an ACK
        }
        return;
      default: return;
    }
  }
  switch (t.state) {
    case S::Trying:
    case S::Proceeding:
      if (code < 200) {
        t.state = S::Proceeding;
      } else {
        t.state = S::Completed;
        stop_timer(t, E);
        stop_timer(t, F);
        release_request(t);  // Completed only absorbs response retransmissions (§17.1.2.2)
        if (t.reliable) {
          terminate(t);
        } else {
          start_timer(t, K, cfg_.t4, now);
        }
      }
      tu_.on_response(t.id, r, now);
      return;
    default: ++stats_.retransmissions_absorbed; return;
  }
}

Result<TransactionId, SendError> TransactionLayer::send_request(const Message& request, const Endpoint& to, Instant now,
                                                                std::optional<std::string_view> branch) {
  const Busy busy(*this);
  Transaction& t = create(true, request, nullptr, to, is_reliable(to.transport), now);
  const TransactionId id = t.id;
  std::string bytes = request.serialize();
  if (!branch) {
    auto via = top_via(request);
    branch = via ? via->branch() : std::string_view();
  }
  const Key key = client_key(*branch, request.method());
  index(t, key, side_hash(key.view(), true));
  t.interval = cfg_.t1;
  if (t.invite) {
    t.state = TransactionState::Calling;
    if (!t.reliable) start_timer(t, A, cfg_.t1, now);
    start_timer(t, B, cfg_.t1 * 64, now);
  } else {
    t.state = TransactionState::Trying;
    if (!t.reliable) start_timer(t, E, cfg_.t1, now);
    start_timer(t, F, cfg_.t1 * 64, now);
    if (cfg_.non_invite_silence > Duration{0} && cfg_.non_invite_silence < cfg_.t1 * 64)
      start_timer(t, Silence, cfg_.non_invite_silence, now);
  }
  // Only a transaction that may retransmit keeps its bytes (an INVITE client's ACK needs the
  // parsed request, which create() kept).
  bool sent = false;
  if (t.reliable) {
    sent = transmit_once(t, std::move(bytes), now, false);
  } else {
    t.request_bytes = std::move(bytes);
    sent = transmit(t, t.request_bytes, now, false);
  }
  if (!sent) return unexpected(SendError::TransportRefused);
  return id;
}

bool TransactionLayer::respond(TransactionId id, const Message& response, Instant now) {
  Transaction* found = find(id);
  if (found == nullptr || found->client || found->state == TransactionState::Terminated) {
    ++stats_.refused_responses;  // RFC 4320 §4.4 (§4.3 of its text): no response without a live transaction
    return false;
  }
  const Busy busy(*this);
  Transaction& t = *found;
  const int code = response.status();
  using S = TransactionState;
  bool ok = false;
  S next = t.state;
  if (!t.invite) {
    if (code == 100) {
      // RFC 4320 §4.1: over an unreliable transport, not before the client's Timer E reaches T2.
      ok = t.state == S::Trying && (t.reliable || now - t.created >= non_invite_trying_deadline());
      next = S::Proceeding;
    } else if (code < 200 || code == 408) {
      // RFC 4320 §4.1: no provisional other than 100 to a non-INVITE request; §4.3: a
      // transaction-stateful element never sends 408 to a non-INVITE request.
      ok = false;
    } else {
      ok = t.state == S::Trying || t.state == S::Proceeding;
      next = S::Completed;
    }
  } else {
    if (code < 200) {
      ok = t.state == S::Proceeding;
    } else if (code < 300) {
      ok = t.state == S::Proceeding || t.state == S::Accepted;
      next = S::Accepted;
    } else {
      ok = t.state == S::Proceeding;
      next = S::Completed;
    }
  }
  if (!ok) {
    ++stats_.refused_responses;
    return false;
  }
  if (!t.reliable && forbidden_destination_via(response)) {
    ++stats_.forbidden_destinations;
    return false;
  }
  // A reliable non-INVITE transaction ends once its final response is sent (Timer J is zero):
  // nothing will replay it, so its bytes are not kept.
  const bool once = t.reliable && !t.invite && next == S::Completed;
  std::string bytes = response.serialize();
  if (!once) t.response_bytes = std::move(bytes);
  t.last_status = code;
  // Only an INVITE server transaction is matched by an ACK, which RFC 2543 peers match by To tag.
  if (t.invite) t.to_tag = std::string(tag_of(response.header(HeaderId::To)));
  stop_timer(t, Trying100);
  bool entered = next != t.state;
  t.state = next;
  if (entered) {
    if (next == S::Accepted) start_timer(t, L, cfg_.t1 * 64, now);  // RFC 6026 §7.1
    if (next == S::Completed) {
      stop_timer(t, Lifetime);
      if (t.invite) {
        t.interval = cfg_.t1;
        if (!t.reliable) start_timer(t, G, cfg_.t1, now);
        start_timer(t, H, cfg_.t1 * 64, now);
      } else {
        release_request(t);  // Completed only replays the response (§17.2.2)
        if (!t.reliable) start_timer(t, J, cfg_.t1 * 64, now);
      }
    }
  }
  bool sent = once ? transmit_once(t, std::move(bytes), now, false) : transmit(t, t.response_bytes, now, false);
  if (sent && once) terminate(t);  // Timer J is zero
  return sent;
}

bool TransactionLayer::send_stateless(const Message& message, const Endpoint& to) {
  if (message.is_response() && !is_reliable(to.transport) && to.ip.is_broadcast_or_multicast()) {
    ++stats_.forbidden_destinations;  // RFC 4475 §3.3.10
    return false;
  }
  return env_.send(to, message.serialize());
}

std::optional<TransactionId> TransactionLayer::find_invite_for_cancel(const Message& cancel) const {
  // RFC 3261 §9.2: the CANCEL matches the INVITE as §17.2.3 describes, but for the method.
  const Key key = server_key(cancel, true);
  const Transaction* found = find_key(key.view(), side_hash(key.view(), false));
  if (found == nullptr) return std::nullopt;
  return found->id;
}

const Message* TransactionLayer::request_of(TransactionId id) const {
  const Transaction* t = find(id);
  return t == nullptr || t->released ? nullptr : &t->request;
}

void TransactionLayer::release_request(Transaction& t) {
  // A completed non-INVITE transaction keeps only its key and what it may replay: at Timer J's
  // 64*T1 that is most of a busy overlay node's transaction memory.
  t.request = Message{};
  std::string().swap(t.request_bytes);
  t.released = true;
}

std::optional<TransactionState> TransactionLayer::state_of(TransactionId id) const {
  const Transaction* t = find(id);
  if (t == nullptr) return std::nullopt;
  return t->state;
}

void TransactionLayer::advance(Instant now) {
  const Busy busy(*this);
  while (timer_queue_.next() <= now) {
    Transaction& t = timer_queue_.top();
    // The transaction's earliest timer (ties: in Timer order, which is deterministic).
    int first = 0;
    for (int i = 1; i < kTimerSlots; ++i) {
      if (t.due[i] < t.due[first] || (t.due[i] == t.due[first] && t.which[i] < t.which[first])) first = i;
    }
    const Timer timer = t.which[first];
    const Instant at = t.due[first];
    t.which[first] = kTimerCount;
    t.due[first] = kInstantMax;
    requeue(t);
    fire(t, timer, at);
  }
}

Instant TransactionLayer::next_wakeup() const {
  return timer_queue_.next();
}

void TransactionLayer::fire(Transaction& t, Timer timer, Instant now) {
  using S = TransactionState;
  switch (timer) {
    case A:  // RFC 3261 §17.1.1.2: retransmit the INVITE, doubling the interval
      if (t.state != S::Calling) return;
      ++stats_.retransmissions_sent;
      if (!transmit(t, t.request_bytes, now)) return;
      t.interval *= 2;
      start_timer(t, A, t.interval, now);
      return;
    case E:  // RFC 3261 §17.1.2.2: doubling up to T2 in Trying, T2 in Proceeding
      if (t.state != S::Trying && t.state != S::Proceeding) return;
      ++stats_.retransmissions_sent;
      if (!transmit(t, t.request_bytes, now)) return;
      t.interval = t.state == S::Trying ? std::min(t.interval * 2, cfg_.t2) : cfg_.t2;
      start_timer(t, E, t.interval, now);
      return;
    case G:  // RFC 3261 §17.2.1: retransmit the final response, doubling up to T2
      if (t.state != S::Completed) return;
      ++stats_.retransmissions_sent;
      if (!transmit(t, t.response_bytes, now)) return;
      t.interval = std::min(t.interval * 2, cfg_.t2);
      start_timer(t, G, t.interval, now);
      return;
    case B:
    case F:
      if (t.state != S::Calling && t.state != S::Trying && t.state != S::Proceeding) return;
      ++stats_.timeouts;
      tu_.on_timeout(t.id, now);
      terminate(t);
      return;
    case Silence:                        // see TimerConfig::non_invite_silence
      if (t.state != S::Trying) return;  // any response, even 100, shows the peer alive
      ++stats_.timeouts;
      ++stats_.silence_timeouts;
      tu_.on_timeout(t.id, now);
      terminate(t);
      return;
    case H:  // RFC 3261 §17.2.1: no ACK came
      if (t.state != S::Completed) return;
      ++stats_.timeouts;
      tu_.on_timeout(t.id, now);
      terminate(t);
      return;
    case Trying100: {
      // RFC 3261 §17.2.1 (INVITE, after 200 ms) and RFC 4320 §4.2 (non-INVITE, when E reaches T2).
      bool invite_waiting = t.invite && t.state == S::Proceeding && t.response_bytes.empty();
      bool non_invite_waiting = !t.invite && t.state == S::Trying;
      if (!invite_waiting && !non_invite_waiting) return;
      Message trying = make_response(t.request, 100);
      t.response_bytes = trying.serialize();
      t.last_status = 100;
      if (!t.invite) t.state = S::Proceeding;
      transmit(t, t.response_bytes, now);
      return;
    }
    case C:  // RFC 3261 §16.6 step 11: the TU decides (a proxy CANCELs); the transaction ends 64*T1 later
      if (t.state != S::Proceeding) return;
      ++stats_.timeouts;
      tu_.on_timeout(t.id, now);
      start_timer(t, Lifetime, cfg_.t1 * 64, now);
      return;
    case Lifetime:
      if (t.state == S::Trying || t.state == S::Proceeding) terminate(t);
      return;
    case D:
    case I:
    case J:
    case K:
    case L:
    case M: terminate(t); return;
    case kTimerCount: return;
  }
}

}  // namespace p2psip::sip
