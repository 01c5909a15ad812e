#include "dht/chord_node.hpp"

#include <algorithm>

#include "core/invariant.hpp"

namespace p2psip::dht {

namespace {

/// An answer that came from no peer: its status and reason, nothing else.
RouteResult route_failure(Status status, std::string reason) {
  RouteResult r;
  r.status = status;
  r.reason = std::move(reason);
  return r;
}
/// Checks the routing table's invariants when a call into the node returns (core/invariant.hpp:
/// compiled in with P2PSIP_INVARIANTS only).
class TableChecked {
 public:
  explicit TableChecked(const RoutingTable& table) : table_(table) {}
  ~TableChecked() { P2PSIP_CHECK_INVARIANT(table_.violation()); }
  TableChecked(const TableChecked&) = delete;
  TableChecked& operator=(const TableChecked&) = delete;

 private:
  const RoutingTable& table_;
};
}  // namespace

namespace {
/// Logs a change of the first successor made while it is alive, naming what caused it.
class SuccessorWatch {
 public:
  SuccessorWatch(const RoutingTable& t, Environment& env, const char* what)
      : t_(t), env_(env), what_(what), before_(t.successor().id) {}
  ~SuccessorWatch() {
    if (t_.successor().id != before_) {
      env_.log(LogLevel::Debug, "chord: successor " + t_.successor().id.short_hex() + " (was " + before_.short_hex() +
                                    ") after " + what_);
    }
  }
  SuccessorWatch(const SuccessorWatch&) = delete;
  SuccessorWatch& operator=(const SuccessorWatch&) = delete;

 private:
  const RoutingTable& t_;
  Environment& env_;
  const char* what_;
  NodeId before_;
};

/// About what `r` takes in a message body: every field, signed records' certificate and
/// signature included (a batch sized without them overran the receiver's body limit, 413).
std::size_t record_size(const Record& r) {
  return r.name.size() + r.dkey.size() + r.value.size() + r.owner.size() + r.signer.size() + r.signature.size() + 64;
}
}  // namespace

ChordNode::ChordNode(Peer self, ChordConfig config, ChordTransport& transport, Environment& env)
    : cfg_(config), transport_(transport), env_(env), table_(std::move(self), config.successors, config.predecessors) {}

Request ChordNode::make(Op op, NodeId target) const {
  Request r;
  r.op = op;
  r.sender = table_.self();
  r.target = target;
  return r;
}

void ChordNode::send(Kind kind, const Peer& to, Request r, Instant now, ReplyHandle reply, RouteCallback cb) {
  auto p = std::make_unique<Pending>();
  p->kind = kind;
  p->to = to;
  p->request = std::move(r);
  p->reply = reply;
  p->cb = std::move(cb);
  p->started = now;
  dispatch(std::move(p), now);
}

void ChordNode::dispatch(std::unique_ptr<Pending> p, Instant now) {
  const RequestId id = next_request_++;
  const Pending& sent = *p;  // stays where it is: pending_ holds the pointer
  pending_[id] = std::move(p);
  ++stats_.requests_out;
  if (sent.to.attach && links_ != nullptr) links_->sending_to(sent.to);
  if (!transport_.send(id, sent.to, sent.request, now)) {
    refused_.push_back(id);
    refused_at_ = std::min(refused_at_, now);
  }
}

std::optional<ChordNode::Outstanding> ChordNode::outstanding(RequestId id) const {
  const auto* found = pending_.find(id);
  if (found == nullptr) return std::nullopt;
  return Outstanding{(*found)->to, (*found)->request};
}

void ChordNode::start(const std::vector<Endpoint>& bootstrap, Instant now) {
  started_ = true;
  bootstrap_ = bootstrap;
  if (bootstrap_.empty()) {
    joined_ = true;  // a new ring of one
    next_stabilize_ = now + cfg_.stabilize_interval;
    env_.log(LogLevel::Info, "chord: started a new ring as " + table_.self().id.short_hex());
    return;
  }
  attempt_join(now);
}

void ChordNode::start_client(Instant now) {
  started_ = true;
  client_ = true;
  env_.log(LogLevel::Info,
           "chord: started as a client (" + table_.self().id.short_hex() + "): routes through relay peers");
  (void)now;
}

void ChordNode::stop_client() {
  if (!client_) return;
  client_ = false;
  started_ = false;
  gateways_.clear();
  gateway_silent_ = nullptr;
  env_.log(LogLevel::Info, "chord: no longer a client (" + table_.self().id.short_hex() + ")");
}

void ChordNode::route_via_gateway(Request r, RouteCallback cb, Instant now) {
  if (gateways_.empty()) {
    ++stats_.routes_failed;
    cb(route_failure(Status::Unavailable, "No Relay Peer Yet"));
    return;
  }
  // The gateway routes it as the first hop of a recursive route: hops 1, and the sender is this
  // client, which a hop-1 sender never makes anyone's neighbour (on_request).
  r.hops = 1;
  r.iterative = false;
  r.final_hop = false;
  const Peer gateway{NodeId{}, gateways_[next_gateway_ % gateways_.size()]};
  send(Kind::Gateway, gateway, std::move(r), now, 0, std::move(cb));
}

void ChordNode::attempt_join(Instant now) {
  // RFC 6940 §10.3 in outline: find the admitting peer (the one responsible for our id), then join it.
  next_join_attempt_ = now + cfg_.stabilize_interval;  // the retry, should this attempt fail
  Peer boot{NodeId{}, bootstrap_[bootstrap_index_++ % bootstrap_.size()]};
  Request r = make(Op::Route, table_.self().id);
  r.route_op = RouteOp::Lookup;
  r.hops = 1;
  r.iterative = cfg_.iterative;
  r.exclude = join_exclude_;
  send(Kind::JoinLookup, boot, r, now);
}

void ChordNode::leave(Instant now) {
  if (leaving_) return;
  leaving_ = true;
  next_stabilize_ = kInstantMax;
  if (table_.alone() || !joined_) return;
  const Peer succ = table_.successor();
  // The successor takes over our records and learns our predecessor; the predecessor learns our
  // successors. Records go in batches that fit a message.
  std::vector<Record> records = primary_records();
  std::size_t i = 0;
  do {
    Request r = make(Op::Leave, succ.id);
    r.predecessors = table_.predecessors();
    std::size_t bytes = 0;
    while (i < records.size() && bytes < cfg_.replicate_batch_bytes) {
      bytes += record_size(records[i]);
      r.records.push_back(records[i++]);
    }
    ++leave_pending_;
    send(Kind::Leave, succ, r, now);
  } while (i < records.size());
  if (table_.predecessor() && table_.predecessor()->id != succ.id) {
    Request r = make(Op::Leave, table_.predecessor()->id);
    r.successors = table_.successors();
    ++leave_pending_;
    send(Kind::Leave, *table_.predecessor(), r, now);
  }
}

std::vector<Record> ChordNode::primary_records() const {
  if (!table_.predecessor()) return storage_.all();
  return storage_.range(table_.predecessor()->id, table_.self().id);
}

bool ChordNode::recently_failed(NodeId id, Instant now) const {
  auto it = failed_.find(id);
  return it != failed_.end() && now - it->second < cfg_.stabilize_interval * 3;
}

void ChordNode::peer_failed(const Peer& p, Instant now) {
  if (p.id == NodeId{} || p.id == table_.self().id) return;
  ++stats_.peers_failed;
  failed_[p.id] = now;
  bool was_successor = table_.remove(p.id);
  env_.log(LogLevel::Info, "chord: peer " + p.id.short_hex() + " at " + p.addr.host_port() + " failed");
  // A link to it is closed too, whether or not the peer is reached only by Attach: a public peer
  // that closed its side of a link we still hold drops what we send over it, and only closing
  // ours sends to its address again.
  if (links_ != nullptr) links_->failed(p);
  if (table_.alone()) {
    // Rebuild a successor from whatever else we know (fingers).
    for (const auto& q : table_.known_peers()) table_.consider(q);
  }
  if (was_successor && joined_ && !leaving_ && !stabilize_in_flight_) stabilize(now);
}

// ---- periodic work ---------------------------------------------------------------------------

void ChordNode::advance(Instant now) {
  const TableChecked checked(table_);
  if (!refused_.empty()) {  // requests that could not leave fail now, outside any send
    std::vector<RequestId> refused;
    refused.swap(refused_);
    refused_at_ = kInstantMax;
    for (RequestId id : refused) on_failure(id, now);
  }
  if (!joined_ && started_ && !leaving_ && now >= next_join_attempt_) attempt_join(now);
  if (joined_ && !leaving_ && now >= next_stabilize_) {
    // Jitter of up to a tenth of the interval keeps peers from stabilizing in lock step.
    Duration jitter(static_cast<std::int64_t>(
        env_.random() % static_cast<std::uint64_t>(std::max<std::int64_t>(1, cfg_.stabilize_interval.count() / 10))));
    next_stabilize_ = now + cfg_.stabilize_interval - jitter;
    ++stats_.stabilize_rounds;
    chained_stabilize_ = 0;
    std::erase_if(failed_, [&](const auto& kv) { return now - kv.second >= cfg_.stabilize_interval * 3; });
    storage_.expire(now);
    if (!stabilize_in_flight_) stabilize(now);
    if (table_.predecessor())
      send(Kind::PingPred, *table_.predecessor(), make(Op::Ping, table_.predecessor()->id), now);
    if (cfg_.finger_rounds <= 1 || rounds_joined_ % cfg_.finger_rounds == 0) fix_fingers(now);
    // While our place in the ring is still settling (the first rounds after joining, or a round
    // that moved our successor), check the successor from afar every round, not once per cycle.
    const bool moved = table_.successor().id != successor_last_round_;
    if (rounds_joined_ < 4 || moved) check_successor(now);
    ++rounds_joined_;
    successor_last_round_ = table_.successor().id;
    maintain_replicas(now);
  }
}

Instant ChordNode::next_wakeup() const {
  Instant next = refused_at_;
  if (joined_ && !leaving_) next = std::min(next, next_stabilize_);
  if (!joined_ && started_ && !leaving_) next = std::min(next, next_join_attempt_);
  return next;
}

void ChordNode::stabilize(Instant now) {
  if (table_.alone()) return;
  stabilize_in_flight_ = true;
  send(Kind::Stabilize, table_.successor(), make(Op::Neighbors, table_.successor().id), now);
}

void ChordNode::fix_fingers(Instant now) {
  if (table_.alone()) {
    table_.clear_fingers_below(RoutingTable::kFingers);
    return;
  }
  // Fingers whose start lies in (self, successor] all are the successor, which routing knows from
  // the successor list; only the others need lookups (about log2 N of them).
  const NodeId self = table_.self().id;
  int lowest = 0;
  while (lowest < RoutingTable::kFingers && in_open_closed(self.plus_pow2(lowest), self, table_.successor().id)) {
    ++lowest;
  }
  table_.clear_fingers_below(lowest);
  if (lowest >= RoutingTable::kFingers) {
    // Our successor is at least half the ring away: right in a ring of two or three, a sign of a
    // far-off successor in a large one. Check it from afar every round (no finger cycle runs).
    check_successor(now);
    return;
  }
  for (std::size_t k = 0; k < cfg_.fingers_per_round; ++k) {
    if (next_finger_ < lowest) {
      // One step of each cycle through the fingers checks the successor from afar instead.
      next_finger_ = RoutingTable::kFingers - 1;
      check_successor(now);
      continue;
    }
    int i = next_finger_--;
    route(
        RouteOp::Lookup, table_.self().id.plus_pow2(i), std::nullopt,
        [this, i](const RouteResult& res) {
          if (res.status == Status::Ok && res.responsible && res.responsible->id != table_.self().id) {
            table_.set_finger(i, *res.responsible);
          }
        },
        now);
  }
}

std::vector<Peer> ChordNode::far_fingers(NodeId skip, bool reachable_only) const {
  std::vector<Peer> out;
  for (int i = RoutingTable::kFingers - 1; i >= 0; --i) {
    const auto f = table_.finger(i);
    if (!f || f->id == table_.self().id || f->id == skip) continue;
    if (reachable_only && links_ != nullptr && !links_->reachable(*f)) continue;
    if (std::none_of(out.begin(), out.end(), [&](const Peer& q) { return q.id == f->id; })) out.push_back(*f);
  }
  return out;
}

void ChordNode::check_successor(Instant now) {
  // Stabilization repairs a ring only from a consistent start: concurrent joins can leave a "loopy"
  // ring, a sparse cycle of peers whose successors skip peers of the main ring, which stabilize
  // never finds (Zave, "Using lightweight modeling to understand Chord", 2012). So look up the key
  // just after our id through our farthest finger rather than our successor: its route runs along
  // the rest of the ring, and if the peer responsible for that key lies between us and our
  // successor, it is our real successor. Successive checks start at successive fingers, farthest
  // first, so that one stuck in the sparse cycle does not make every check fail alike.
  std::vector<Peer> starts = far_fingers(table_.successor().id, false);
  auto add = [&](const Peer& p) {
    if (p.id != table_.successor().id && p.id != table_.self().id &&
        std::none_of(starts.begin(), starts.end(), [&](const Peer& q) { return q.id == p.id; }))
      starts.push_back(p);
  };
  if (starts.empty()) {
    // No finger lies beyond our successor: either the ring is tiny, or we joined with a successor
    // far past our real one (a peer admitted us during a flash crowd while its own range was still
    // wide), and then every finger start falls before that successor. Stabilization alone would
    // walk back one peer per round. Any other peer routes the check through its own fingers:
    // predecessors first, then the rest of the successor list, then the successor itself.
    for (const auto& p : table_.predecessors()) add(p);
    for (const auto& p : table_.successors()) add(p);
    if (starts.empty() && table_.successor().id != table_.self().id) starts.push_back(table_.successor());
  }
  if (starts.empty()) return;
  const Peer far = starts[successor_checks_++ % starts.size()];
  NodeId key = table_.self().id.plus_pow2(0);
  Request r = make(Op::Route, key);
  r.route_op = RouteOp::Lookup;
  r.hops = 1;
  r.iterative = cfg_.iterative;
  ++stats_.routes_started;
  send(Kind::ClientRoute, far, r, now, 0, [this](const RouteResult& res) {
    if (res.status != Status::Ok || !res.responsible || table_.alone()) return;
    const Peer& found = *res.responsible;
    if (found.id == table_.self().id || !in_open_open(found.id, table_.self().id, table_.successor().id)) return;
    ++stats_.successors_repaired;
    env_.log(LogLevel::Info, "chord: successor check found " + found.id.short_hex() + " before our successor " +
                                 table_.successor().id.short_hex());
    table_.consider(found);
  });
}

void ChordNode::maintain_replicas(Instant now) {
  // Our records live on our first `replicas` successors too. Push them again when that set changed
  // (to the peers new in it), or to all of them when our predecessor changed (our range moved).
  std::vector<Peer> targets;
  for (const auto& s : table_.successors()) {
    if (targets.size() >= cfg_.replicas) break;
    targets.push_back(s);
  }
  std::vector<NodeId> ids;
  for (const auto& t : targets) ids.push_back(t.id);
  std::optional<NodeId> pred = table_.predecessor() ? std::optional(table_.predecessor()->id) : std::nullopt;
  bool range_changed = pred != replicated_for_predecessor_;
  std::vector<Peer> to_push;
  for (const auto& t : targets) {
    bool known = std::find(replica_targets_.begin(), replica_targets_.end(), t.id) != replica_targets_.end();
    if (range_changed || !known) to_push.push_back(t);
  }
  replica_targets_ = ids;
  replicated_for_predecessor_ = pred;
  if (!to_push.empty()) replicate(primary_records(), to_push, now);
}

void ChordNode::replicate(const std::vector<Record>& records, const std::vector<Peer>& targets, Instant now) {
  if (records.empty()) return;
  for (const auto& t : targets) {
    std::size_t i = 0;
    while (i < records.size()) {
      Request r = make(Op::Replicate, t.id);
      std::size_t bytes = 0;
      while (i < records.size() && bytes < cfg_.replicate_batch_bytes) {
        bytes += record_size(records[i]);
        r.records.push_back(records[i++]);
      }
      stats_.records_replicated += r.records.size();
      send(Kind::Replicate, t, std::move(r), now);
    }
  }
}

// ---- routing ---------------------------------------------------------------------------------

void ChordNode::route(RouteOp op, NodeId target, std::optional<Record> record, RouteCallback cb, Instant now) {
  if (cfg_.fetch_attempts <= 1) {
    route_excluding(op, target, std::move(record), {}, std::move(cb), now);
    return;
  }
  // A fetch that finds nothing it believes, or a lookup answered implausibly, is tried again past
  // the peer that answered: records live at the responsible peer and its successors, and a peer
  // that withholds or forges them (or claims a key that is not its own) is routed around as if it
  // had left (docs/SECURITY.md).
  route_try(std::make_shared<RouteTries>(
                RouteTries{op, target, std::move(record), {}, 1, now, Duration{0}, std::nullopt, std::move(cb)}),
            now);
}

bool ChordNode::plausible(NodeId key, NodeId responsible) const {
  if (cfg_.plausible_gaps == 0) return true;
  const auto gap = table_.mean_gap();
  if (!gap) return true;  // too few peers known to judge
  return as_double(distance(key, responsible)) <= *gap * cfg_.plausible_gaps;
}

void ChordNode::route_try(std::shared_ptr<RouteTries> t, Instant now) {
  t->started = now;
  route_excluding(
      t->op, t->target, t->record, t->exclude,
      [this, t](const RouteResult& res) {
        t->latency += res.latency;
        const bool fetch = t->op == RouteOp::Fetch;
        const bool found = res.status == Status::Ok && (!fetch || !res.records.empty());
        const bool again = !found && t->attempt < cfg_.fetch_attempts && res.responsible &&
                           t->exclude.size() < kMaxExcluded && !is_excluded(t->exclude, res.responsible->id) &&
                           ((fetch && res.status == Status::NotFound) || res.status >= Status::ServerError);
        // A "no such record" from any try is the answer when none finds one: later tries, with
        // more peers excluded, fail in other ways that say less.
        if (!found && res.status == Status::NotFound && !t->not_found) t->not_found = res;
        if (!again) {
          RouteResult out = !found && t->not_found ? *t->not_found : res;
          out.latency = t->latency;
          out.attempts = t->attempt;
          t->cb(out);
          return;
        }
        t->exclude.push_back(res.responsible->id);
        ++t->attempt;
        route_try(t, t->started + res.latency);
      },
      now);
}

void ChordNode::route_excluding(RouteOp op, NodeId target, std::optional<Record> record, std::vector<NodeId> exclude,
                                RouteCallback cb, Instant now) {
  Request r = make(Op::Route, target);
  r.route_op = op;
  r.iterative = cfg_.iterative;
  r.exclude = std::move(exclude);
  if (record) r.records.push_back(*record);
  start_route(std::move(r), std::move(cb), now);
}

void ChordNode::attach(NodeId peer, std::string payload, RouteCallback cb, Instant now) {
  Request r = make(Op::Route, peer);
  r.route_op = RouteOp::Attach;
  r.iterative = false;  // its answer comes back along the path: the target may be reachable no other way
  r.payload = std::move(payload);
  r.origin = table_.self();
  if (!joined_ || client_) {
    start_route(std::move(r), std::move(cb), now);
    return;
  }
  Request again = r;
  // "No Such Peer" came from a peer that takes the target's key for its own and does not know the
  // target: our nearest neighbours past the target have not learned of it yet, while the peers
  // that have (the ones it keeps links to) lie on another stretch of a ring still forming (a
  // join storm leaves two interleaved chains for minutes; found by the simulator). Tried once
  // more from the far side of the ring, as the successor check looks (check_successor), and never
  // through us again.
  start_route(
      std::move(r),
      [this, again = std::move(again), cb = std::move(cb), now](const RouteResult& res) mutable {
        if (res.status != Status::NotFound) {
          cb(res);
          return;
        }
        attach_around(std::move(again), std::move(cb), now + res.latency);
      },
      now);
}

void ChordNode::attach_around(Request r, RouteCallback cb, Instant now) {
  ++stats_.attaches_around;
  const std::vector<Peer> starts = far_fingers(r.target, true);
  if (starts.empty()) {
    cb(route_failure(Status::NotFound, "No Such Peer"));
    return;
  }
  const Peer far = starts[successor_checks_++ % starts.size()];
  r.exclude.push_back(table_.self().id);
  r.hops = 1;
  r.final_hop = false;
  ++stats_.routes_started;
  send(Kind::ClientRoute, far, std::move(r), now, 0, std::move(cb));
}

Response ChordNode::payload_answer(Status status, std::string reason, std::string payload,
                                   std::uint32_t retry_after_s) const {
  Response resp;
  resp.status = status;
  resp.reason = std::move(reason);
  resp.responder = table_.self();
  resp.payload = std::move(payload);
  resp.retry_after_s = retry_after_s;
  return resp;
}

void ChordNode::answer_attach(const AttachRequest& a, Status status, std::string reason, std::string payload,
                              std::uint32_t retry_after_s, Instant now) {
  Response resp = payload_answer(status, std::move(reason), std::move(payload), retry_after_s);
  resp.responsible = table_.self();  // routed to this Node-ID: it answers for it
  resp.hops = a.hops;
  transport_.reply(a.handle, resp, now);
}

void ChordNode::answer_here(ReplyHandle handle, const Request& r, Instant now) {
  if (r.route_op == RouteOp::Attach && r.target == table_.self().id && attach_handler_ != nullptr) {
    attach_handler_->on_attach(AttachRequest{handle, r.origin.value_or(r.sender), r.hops, r.payload}, now);
    return;
  }
  transport_.reply(handle, execute(r, now), now);
}

void ChordNode::start_route(Request r, RouteCallback cb, Instant now) {
  ++stats_.routes_started;
  const NodeId target = r.target;
  if (client_) {
    route_via_gateway(std::move(r), std::move(cb), now);
    return;
  }
  if (!joined_ && r.route_op == RouteOp::Attach && !bootstrap_.empty()) {
    // A peer joining behind a NAT links to the peer that admits it (reached by Attach) before it
    // is in the ring: the bootstrap peer routes its Attach as a first hop.
    route_via_bootstrap(std::move(r), std::move(cb), now);
    return;
  }
  if (!joined_) {
    // A peer still joining knows no ring yet: it would take every key for its own, and a record
    // stored here now would sit where no lookup will ever look.
    ++stats_.routes_failed;
    cb(route_failure(Status::Unavailable, "Not Joined Yet"));
    return;
  }
  const Excluded ex(r.exclude);
  if (links_ != nullptr && r.route_op == RouteOp::Attach) {
    if (auto known = table_.find(target)) {
      // An Attach goes to a peer, not to whoever is responsible for its key: one we know goes its
      // way even when our pointers, stale for want of that very link, make its key look ours.
      r.hops = 1;
      r.final_hop = true;
      send_first_hop(std::move(r), *known, std::move(cb), now);
      return;
    }
  }
  if (table_.responsible_for(target, false, ex)) {
    Response local = execute(r, now, true);
    RouteResult res = route_failure(local.status, local.reason);
    res.responsible = local.responsible;
    res.records = std::move(local.records);
    (local.status == Status::Ok ? stats_.routes_ok : stats_.routes_failed)++;
    cb(res);
    return;
  }
  r.hops = 1;
  r.final_hop = table_.successor_responsible(target, ex);
  Peer next = r.final_hop ? table_.successor(ex) : table_.next_hop(target, cfg_.route_via_successor_list, ex);
  if (next.id == table_.self().id) {  // everyone it knows is excluded
    ++stats_.routes_failed;
    cb(route_failure(Status::Unavailable, "No Route To Responsible Peer"));
    return;
  }
  send_first_hop(std::move(r), next, std::move(cb), now);
}

void ChordNode::send_first_hop(Request r, Peer next, RouteCallback cb, Instant now) {
  if (links_ != nullptr && r.route_op == RouteOp::Attach && !links_->reachable(next)) {
    if (auto detour = attach_detour(r, next, Excluded(r.exclude))) {
      r.final_hop = false;
      next = *detour;
    } else if (!bootstrap_.empty()) {
      // Nobody here is linked to the target yet (a peer that has just joined, attaching to its
      // new neighbours): the bootstrap peer routes it along the ring to a neighbour of the target
      // (NAT.md, "Peers behind cone NATs").
      route_via_bootstrap(std::move(r), std::move(cb), now);
      return;
    }
  }
  send(Kind::ClientRoute, next, std::move(r), now, 0, std::move(cb));
}

void ChordNode::route_via_bootstrap(Request r, RouteCallback cb, Instant now) {
  r.hops = 1;
  r.final_hop = false;
  const Peer boot{NodeId{}, bootstrap_[bootstrap_index_++ % bootstrap_.size()]};
  send(Kind::Gateway, boot, std::move(r), now, 0, std::move(cb));
}

std::optional<Peer> ChordNode::attach_detour(const Request& r, const Peer& next, Excluded ex) const {
  if (links_ == nullptr || r.route_op != RouteOp::Attach || links_->reachable(next)) return std::nullopt;
  // The peers a message does not reach now are left out, as excluded ones are.
  std::vector<NodeId> out(ex.begin(), ex.end());
  for (const auto& p : table_.known_peers()) {
    if (!links_->reachable(p)) out.push_back(p.id);
  }
  const Peer hop = table_.next_hop(r.target, true, Excluded(out));
  if (hop.id != table_.self().id && in_open_open(hop.id, table_.self().id, r.target) && links_->reachable(hop)) {
    return hop;
  }
  // Nobody we reach lies between us and the target: we are the last before it (the ring routes its
  // key back to us). Its successors keep links to it, and it knows them even when it does not know
  // us yet: the nearest one we reach past it carries it (it knows the target, and sends it there).
  for (const auto& s : table_.successors()) {
    if (s.id != r.target && in_open_open(s.id, r.target, table_.self().id) && !is_excluded(ex, s.id) &&
        links_->reachable(s)) {
      return s;
    }
  }
  return std::nullopt;
}

void ChordNode::handle_route(ReplyHandle handle, const Request& r, Instant now) {
  if (r.hops > cfg_.max_hops) {
    Response resp;
    resp.status = Status::TooManyHops;
    resp.reason = "Too Many Overlay Hops";
    resp.responder = table_.self();
    transport_.reply(handle, resp, now);
    return;
  }
  const Excluded ex(r.exclude);
  std::optional<Peer> known;
  if (links_ != nullptr && r.route_op == RouteOp::Attach && r.target != table_.self().id) known = table_.find(r.target);
  if (!known && table_.responsible_for(r.target, r.final_hop, ex)) {
    answer_here(handle, r, now);
    return;
  }
  // An Attach for a peer we know goes to it (or, not reached yet, toward it: attach_detour below).
  bool final_hop = known || table_.successor_responsible(r.target, ex);
  Peer next = known       ? *known
              : final_hop ? table_.successor(ex)
                          : table_.next_hop(r.target, cfg_.route_via_successor_list, ex);
  // The sender routed the key here as ours, but it lies behind our predecessor: a peer joined
  // between the sender and us that the sender has not learned of yet. Clockwise routing would send
  // it back to the sender; walk it back toward the sender instead, stopping at the responsible
  // peer. Each step goes as far back as our predecessor list reaches while staying at or past the
  // key (a walk of hundreds of peers, left by a join storm, would otherwise outrun max_hops).
  const auto pred = table_.predecessor(ex);
  if (!known && r.final_hop && pred && r.sender.id != table_.self().id &&
      in_open_open(pred->id, r.sender.id, table_.self().id)) {
    next = *pred;
    final_hop = true;
    for (const auto& q : table_.predecessors()) {
      if (is_excluded(ex, q.id) || !in_open_open(q.id, r.sender.id, next.id)) continue;
      if (in_open_closed(r.target, r.sender.id, q.id)) next = q;  // the key lies at or before q
    }
  }
  if (next.id == table_.self().id) {
    answer_here(handle, r, now);
    return;
  }
  if (auto detour = attach_detour(r, next, ex)) {
    next = *detour;
    final_hop = false;
  }
  if (r.iterative) {
    // RFC 3261 §21.3.3 in dSIP's use: 302 with the next hop to ask.
    Response resp;
    resp.status = Status::Redirect;
    resp.reason = final_hop ? "Responsible Peer" : "Closer Peer";
    resp.responder = table_.self();
    resp.redirect = next;
    resp.redirect_final = final_hop;
    resp.hops = r.hops;
    transport_.reply(handle, resp, now);
    return;
  }
  Pending p;
  p.kind = Kind::Forward;
  p.request = r;
  p.request.sender = table_.self();
  p.request.hops = r.hops + 1;
  p.request.final_hop = final_hop;
  p.reply = handle;
  p.to = next;
  p.started = now;
  ++stats_.forwarded;
  forward(std::move(p), now);
}

void ChordNode::learn_responsible(NodeId key, const Response& r, Instant now) {
  // An answer relayed back through us, or to us, names the peer responsible for its key: a live
  // peer, and one ahead of us. One between us and our successor is a closer successor, skipped by
  // our pointer: routes into that gap then walk back from the successor a few peers per hop, and
  // this ends the walk for every later route. Any other is offered as a finger: in a ring that has
  // just formed (a join storm) no peer has fingers yet and routes crawl along successor lists;
  // every answer then teaches each peer on its way a finger (the finger lookups, one per round,
  // would take minutes). An answer naming a peer far past its key (taken for forged) teaches
  // nothing.
  if (r.status != Status::Ok || !r.responsible || table_.alone() || recently_failed(r.responsible->id, now)) return;
  if (!plausible(key, r.responsible->id)) return;
  if (in_open_open(r.responsible->id, table_.self().id, table_.successor().id)) {
    ++stats_.successors_repaired;
    table_.consider(*r.responsible);
    return;
  }
  if (cfg_.learn_fingers) table_.offer_finger(*r.responsible);
}

void ChordNode::forward(Pending p, Instant now) {
  dispatch(std::make_unique<Pending>(std::move(p)), now);
}

Response ChordNode::execute(const Request& r, Instant now, bool own) {
  Response resp;
  resp.responder = table_.self();
  resp.responsible = table_.self();
  resp.hops = r.hops;
  switch (r.route_op) {
    case RouteOp::Lookup: break;
    case RouteOp::Store: {
      if (r.records.size() != 1 || r.records[0].key != r.target) {
        resp.status = Status::BadRequest;
        resp.reason = "Store Needs One Record For Its Key";
        break;
      }
      Record rec = r.records[0];
      rec.stored_at_us = now.time_since_epoch().count();  // the storing peer's storage time
      if (Refusal no = take(rec, now, own)) {
        resp.status = no.status;
        resp.reason = no.reason;
        break;
      }
      std::vector<Peer> targets;
      for (const auto& s : table_.successors()) {
        if (targets.size() >= cfg_.replicas) break;
        targets.push_back(s);
      }
      replicate({rec}, targets, now);
      break;
    }
    case RouteOp::Attach:
      // Here only when no handler took it: the key is not this peer's own Node-ID, or nothing here
      // sets up links.
      resp.status = r.target == table_.self().id ? status_of(501) : Status::NotFound;
      resp.reason = r.target == table_.self().id ? "Attach Not Supported" : "No Such Peer";
      break;
    case RouteOp::Fetch: {
      // Every live dictionary entry under the key (one for single-valued data).
      resp.records = storage_.entries(r.target, now);
      if (resp.records.empty()) {
        resp.status = Status::NotFound;
        resp.reason = "No Record For Key";
      }
      break;
    }
    case RouteOp::Find: {
      // RFC 6940 §7.4.4, with the records themselves: those of the kind asked for that this peer
      // holds, nearest after the target first (a random target reaches a random peer, and the
      // peers announcing a service are spread over the ring by their own Node-IDs: §9).
      if (r.kind != kTurnServiceKind) {
        resp.status = Status::BadRequest;
        resp.reason = "Unknown Kind For Find";
        break;
      }
      resp.records = storage_.nearest(r.target, std::string(r.kind) + ":", kMaxFound, now);
      if (resp.records.empty()) {
        resp.status = Status::NotFound;
        resp.reason = "No Record Of That Kind Here";
      }
      break;
    }
  }
  return resp;
}

// ---- incoming requests -------------------------------------------------------------------------

void ChordNode::on_request(ReplyHandle handle, const Request& r, Instant now) {
  const TableChecked checked(table_);
  SuccessorWatch watch(table_, env_, op_name(r.op).data());
  ++stats_.requests_in;
  Response resp;
  resp.responder = table_.self();
  // Any request is proof of life of its sender; a peer we had written off is back.
  if (r.sender.id != NodeId{}) failed_.erase(r.sender.id);
  // Until we are in the ring we know nothing of it: answering for keys or admitting joiners now
  // would build a second ring. The asker retries through another peer.
  if (!joined_ && (r.op == Op::Route || r.op == Op::Join)) {
    resp.status = Status::Unavailable;
    resp.reason = "Not Joined Yet";
    transport_.reply(handle, resp, now);
    return;
  }
  switch (r.op) {
    case Op::Route:
      // A recursively forwarded request (hops > 1) comes from a peer in the ring: if it lies
      // between us and a neighbour, it is a closer neighbour. This is how a peer left in a sparse
      // cycle by concurrent joins hears of the main ring whenever traffic passes through it. (At
      // hops 1, and in iterative routing at any hop, the sender is the originator, which may be a
      // peer still joining and must not become anyone's neighbour yet.)
      if (!r.iterative && r.hops > 1 && !recently_failed(r.sender.id, now)) {
        table_.consider(r.sender);
        table_.offer_predecessor(r.sender);
      }
      handle_route(handle, r, now);
      return;
    case Op::Join: {
      const Peer& n = r.sender;
      resp.predecessors = table_.predecessors();
      // Alone, we are both neighbours of the joining peer. Without this it would start with no
      // predecessor, notify nobody, and admit the next joiners with none either: a chain that the
      // first peer's stabilization then walks one peer per step (found by the simulator: 1000
      // peers joining at 10/s left 5% unjoined for minutes).
      if (table_.alone() && resp.predecessors.empty()) resp.predecessors.push_back(table_.self());
      resp.successors = table_.successors();  // the joining peer's list is us, then these
      // The joining peer now holds (predecessor, n]: hand it those records (ours stay as replicas),
      // one batch in this answer and the rest in replicate messages right after it (an answer
      // holding them all would outgrow any body limit: the joiner could never join).
      NodeId from = table_.predecessor() ? table_.predecessor()->id : table_.self().id;
      std::vector<Record> handed = storage_.range(from, n.id);
      stats_.records_transferred += handed.size();
      std::size_t i = 0;
      for (std::size_t bytes = 0; i < handed.size() && bytes < cfg_.replicate_batch_bytes; ++i) {
        bytes += record_size(handed[i]);
      }
      if (i < handed.size())
        replicate(std::vector<Record>(handed.begin() + static_cast<std::ptrdiff_t>(i), handed.end()), {n}, now);
      handed.resize(i);
      resp.records = std::move(handed);
      table_.offer_predecessor(n);
      table_.consider(n);
      break;
    }
    case Op::Neighbors:
      // The asker takes us for its successor, so it may be our predecessor (Chord's notify, learned
      // one message earlier).
      resp.predecessors = table_.predecessors();
      resp.successors = table_.successors();
      if (!recently_failed(r.sender.id, now)) table_.offer_predecessor(r.sender);
      break;
    case Op::Notify:
      table_.offer_predecessor(r.sender);
      table_.consider(r.sender);
      break;
    case Op::Ping:
      // The asker takes us for its predecessor, so it may be our successor: this is how a peer whose
      // successor pointer skipped part of the ring (concurrent joins) hears of the peer it skipped,
      // which stabilization alone would reach one peer at a time.
      resp.predecessors = table_.predecessors();
      if (!recently_failed(r.sender.id, now)) table_.consider(r.sender);
      break;
    case Op::Leave: {
      for (const auto& rec : r.records) take(rec, now);
      stats_.records_transferred += r.records.size();
      if (table_.predecessor() && table_.predecessor()->id == r.sender.id) {
        // The leaver's predecessors become ours.
        std::vector<Peer> preds;
        for (const auto& p : r.predecessors) {
          if (p.id != table_.self().id) preds.push_back(p);
        }
        table_.clear_predecessors();
        if (!preds.empty()) table_.set_predecessors(preds.front(), preds);
      }
      bool was_successor = !table_.alone() && table_.successor().id == r.sender.id;
      table_.remove(r.sender.id);
      if (was_successor) {
        for (const auto& s : r.successors) {
          if (s.id != table_.self().id && !recently_failed(s.id, now)) table_.consider(s);
        }
      }
      break;
    }
    case Op::Replicate:
      for (const auto& rec : r.records) take(rec, now);
      break;
    case Op::Turn:
      if (turn_handler_ != nullptr) {
        turn_handler_->on_turn(TurnRequest{handle, r.sender, r.payload}, now);
        return;
      }
      resp.status = Status::NotFound;
      resp.reason = "No TURN Service Here";
      break;
  }
  transport_.reply(handle, resp, now);
}

void ChordNode::answer_turn(const TurnRequest& t, Status status, std::string reason, std::string payload,
                            std::uint32_t retry_after_s, Instant now) {
  transport_.reply(t.handle, payload_answer(status, std::move(reason), std::move(payload), retry_after_s), now);
}

void ChordNode::ask_turn(const Peer& to, std::string payload, RouteCallback cb, Instant now) {
  Request r = make(Op::Turn, to.id);
  r.payload = std::move(payload);
  send(Kind::Turn, to, std::move(r), now, 0, std::move(cb));
}

void ChordNode::find(std::string_view kind, NodeId target, RouteCallback cb, Instant now) {
  Request r = make(Op::Route, target);
  r.route_op = RouteOp::Find;
  r.iterative = cfg_.iterative;
  r.kind = std::string(kind);
  start_route(std::move(r), std::move(cb), now);
}

// ---- outcomes -----------------------------------------------------------------------------------

Refusal ChordNode::take(const Record& rec, Instant now, bool own) {
  // Limits first: they cost nothing to check, and a flood of records should not cost signatures.
  if (rec.value.size() > cfg_.max_value_bytes) {
    ++stats_.records_over_quota;
    return Refusal{Status::TooLarge,
                   "Request Entity Too Large (Value Over " + std::to_string(cfg_.max_value_bytes) + " Octets)"};
  }
  auto at_quota = [&] {
    if (storage_.held_for(rec) < cfg_.max_records_per_owner) return false;
    storage_.expire(now);  // entries expired since the last round do not count
    return storage_.held_for(rec) >= cfg_.max_records_per_owner;
  };
  if (rec.lifetime_s != 0 && storage_.get(rec.key, rec.dkey) == nullptr && at_quota()) {
    ++stats_.records_over_quota;
    // Logged once per owner per minute, not once per record.
    const NodeId owner = Storage::owner_of(rec);
    if (quota_logged_(owner, now)) {
      env_.log(LogLevel::Warn, "chord: owner " + owner.short_hex() + " (" + rec.owner + ") is at its quota of " +
                                   std::to_string(cfg_.max_records_per_owner) + " records; refusing " + rec.name);
    }
    return Refusal{Status::TooLarge, "Request Entity Too Large (Storage Quota Of " +
                                         std::to_string(cfg_.max_records_per_owner) + " Records Per Owner)"};
  }
  if (guard_ != nullptr) {
    if (Refusal no = guard_->admit(rec, storage_.get(rec.key, rec.dkey), now, own)) {
      ++stats_.records_refused;
      env_.log(LogLevel::Debug,
               "chord: record " + rec.name + " refused: " + std::to_string(code(no.status)) + " " + no.reason);
      return no;
    }
  }
  storage_.put(rec);
  return {};
}

void ChordNode::sift(std::vector<Record>& records, Instant now) {
  if (guard_ == nullptr) return;
  stats_.records_disbelieved += std::erase_if(records, [&](const Record& rec) { return !guard_->believe(rec, now); });
}

RouteResult ChordNode::result_of(const Response& r, Duration latency) {
  RouteResult res;
  res.status = r.status;
  res.reason = r.reason;
  res.responsible = r.responsible;
  res.hops = r.hops;
  res.records = r.records;
  res.payload = r.payload;
  res.retry_after_s = r.retry_after_s;
  res.latency = latency;
  return res;
}

void ChordNode::finish_route(Pending& p, const Response& r, Instant now) {
  RouteResult res = result_of(r, now - p.started);
  // An answer for a key from a peer far past it claims someone else's key (ChordConfig::
  // plausible_gaps): nothing of it is taken, and the route is tried again past that peer.
  if ((res.status == Status::Ok || res.status == Status::NotFound) && res.responsible &&
      !plausible(p.request.target, res.responsible->id)) {
    ++stats_.implausible;
    if (res.responsible->id != table_.self().id) peer_failed(*res.responsible, now);
    res.status = Status::Implausible;
    res.reason = "Implausible Responsible Peer " + res.responsible->id.short_hex();
    res.records.clear();
  }
  if (p.request.route_op == RouteOp::Find) {
    // Only records of the kind asked for, and only those that verify.
    const std::string prefix = p.request.kind + ":";
    std::erase_if(res.records, [&](const Record& rec) { return rec.name.compare(0, prefix.size(), prefix) != 0; });
    if (res.records.size() > kMaxFound) res.records.resize(kMaxFound);
  }
  if ((p.request.route_op == RouteOp::Fetch || p.request.route_op == RouteOp::Find) && !res.records.empty()) {
    // A storing peer can withhold records but not forge them: what does not verify is dropped.
    sift(res.records, now);
    if (res.records.empty() && res.status == Status::Ok) {
      res.status = Status::NotFound;
      res.reason = "No Verified Record";
    }
  }
  (r.status == Status::Ok || r.status == Status::NotFound ? stats_.routes_ok : stats_.routes_failed)++;
  if (p.cb) p.cb(res);
}

void ChordNode::on_response(RequestId id, const Response& r, Instant now) {
  const TableChecked checked(table_);
  auto* found = pending_.find(id);
  if (found == nullptr) return;
  SuccessorWatch watch(table_, env_, "a response");
  Pending p = std::move(**found);
  pending_.erase(id);
  if (r.responder.id != NodeId{} && p.to.id == NodeId{}) p.to.id = r.responder.id;
  switch (p.kind) {
    case Kind::Stabilize: return on_stabilize_answer(p, r, now);
    case Kind::JoinLookup: return on_join_lookup_answer(p, r, now);
    case Kind::Join: return on_join_answer(r, now);
    case Kind::ClientRoute: return on_route_answer(std::move(p), r, now);
    case Kind::Gateway: return finish_route(p, r, now);  // a client learns nothing of the ring
    case Kind::Forward: return on_forward_answer(id, std::move(p), r, now);
    case Kind::PingPred: return on_ping_answer(p, r, now);
    case Kind::Leave: --leave_pending_; return;
    case Kind::Turn: {
      RouteResult res = result_of(r, now - p.started);
      res.responsible = r.responder;  // the peer asked, which is not routed to
      if (p.cb) p.cb(res);
      return;
    }
    case Kind::Notify:
    case Kind::Replicate: return;  // an acknowledgement: nothing in it to learn from
  }
}

void ChordNode::on_stabilize_answer(const Pending& p, const Response& r, Instant now) {
  stabilize_in_flight_ = false;
  if (table_.alone() || table_.successor().id != p.to.id) return;  // the ring moved meanwhile
  if (r.status != Status::Ok) return;  // alive, but it said nothing to learn from (an overload, a refusal)
  Peer succ = table_.successor();
  std::vector<Peer> rest;
  for (const auto& s : r.successors) {
    if (!recently_failed(s.id, now)) rest.push_back(s);
  }
  // Chord's stabilize: the successor's predecessor may be a closer successor. Its whole
  // predecessor list is taken (nearest first), so that a successor pointer left far off by a
  // join storm walks back as many peers per step as the list holds, not one.
  const Peer* their_pred = r.predecessors.empty() ? nullptr : &r.predecessors.front();
  for (const auto& q : r.predecessors) {
    if (q.id == table_.self().id || recently_failed(q.id, now) || !in_open_open(q.id, table_.self().id, succ.id)) {
      break;
    }
    rest.insert(rest.begin(), succ);
    succ = q;
  }
  table_.set_successors(succ, rest);
  if (succ.id != p.to.id && chained_stabilize_ < 16) {
    // A closer successor: ask it at once rather than a round later, so that a far-off
    // successor pointer converges in one round instead of one peer per round.
    ++chained_stabilize_;
    stabilize(now);
    return;
  }
  if (!their_pred || their_pred->id != table_.self().id || succ.id != p.to.id) {
    send(Kind::Notify, table_.successor(), make(Op::Notify, table_.successor().id), now);
  }
  return;
}

void ChordNode::on_join_lookup_answer(const Pending& p, const Response& r, Instant now) {
  if (r.status == Status::Redirect && r.redirect) {  // iterative join lookup: follow the redirect
    Request next = p.request;
    next.hops = r.hops + 1;
    next.final_hop = r.redirect_final;
    send(Kind::JoinLookup, *r.redirect, std::move(next), now);
    return;
  }
  if (r.status == Status::Unavailable && r.responder.id == table_.self().id) {
    // The ring routed our own id to us: a peer took us in, and its answer to our Join never came
    // (it timed out while the Join waited for a link, and went later). Our predecessor now
    // routes our keys to us, and every join lookup would end here. Join again at the peer that
    // admitted us, or at the successor the ring has shown us since, in turn (one may have left).
    std::vector<Peer> again;
    if (!table_.alone()) again.push_back(table_.successor());
    if (admitting_ && (again.empty() || again.front().id != admitting_->id)) again.push_back(*admitting_);
    if (!again.empty()) {
      ++stats_.rejoins;
      const Peer to = again[rejoins_++ % again.size()];
      env_.log(LogLevel::Info,
               "chord: the ring routes our id to us before we joined: joining " + to.id.short_hex() + " again");
      send(Kind::Join, to, make(Op::Join, to.id), now);
      return;
    }
  }
  if (r.status != Status::Ok || !r.responsible || r.responsible->id == table_.self().id) {
    next_join_attempt_ = now + std::min(cfg_.stabilize_interval, seconds(1));  // soon, via the next bootstrap
    return;
  }
  admitting_ = *r.responsible;
  send(Kind::Join, *r.responsible, make(Op::Join, r.responsible->id), now);
  return;
}

void ChordNode::on_join_answer(const Response& r, Instant now) {
  if (r.status != Status::Ok) {
    next_join_attempt_ = now + std::min(cfg_.stabilize_interval, seconds(1));
    return;
  }
  Peer admitting = r.responder;
  // The admitting peer should be the one responsible for our id: close past it. One far past
  // it (ChordConfig::plausible_gaps, the gaps judged from its own successor list) was named by
  // a forged lookup: look again, past it. Concurrent joins leave it a few gaps away at most.
  // A young ring's short lists say nothing of the gaps: judged from 4 successors on.
  if (cfg_.plausible_gaps > 0 && r.successors.size() >= 4) {
    const double gap =
        as_double(distance(admitting.id, r.successors.back().id)) / static_cast<double>(r.successors.size());
    if (as_double(distance(table_.self().id, admitting.id)) > gap * cfg_.plausible_gaps) {
      ++stats_.implausible;
      env_.log(LogLevel::Info,
               "chord: " + admitting.id.short_hex() + " admitted us, far past our place: looking again past it");
      if (join_exclude_.size() >= kMaxExcluded) join_exclude_.clear();
      join_exclude_.push_back(admitting.id);
      next_join_attempt_ = now + std::min(cfg_.stabilize_interval, seconds(1));
      return;
    }
  }
  join_exclude_.clear();
  table_.set_successors(admitting, r.successors);
  for (const auto& pred : r.predecessors) {
    if (pred.id != table_.self().id) table_.offer_predecessor(pred);
  }
  for (const auto& rec : r.records) take(rec, now);
  joined_ = true;
  next_join_attempt_ = kInstantMax;
  next_stabilize_ = now + cfg_.stabilize_interval / 4;
  env_.log(LogLevel::Info, "chord: joined as " + table_.self().id.short_hex() + " before " + admitting.id.short_hex() +
                               " at " + admitting.addr.host_port());
  if (table_.predecessor()) send(Kind::Notify, *table_.predecessor(), make(Op::Notify, table_.predecessor()->id), now);
  return;
}

void ChordNode::on_route_answer(Pending p, const Response& r, Instant now) {
  if (r.status == Status::Redirect && r.redirect) {
    // Iterative routing: ask the peer we were sent to.
    Request next = p.request;
    next.hops = r.hops + 1;
    next.final_hop = r.redirect_final;
    table_.consider(*r.redirect);
    p.to = *r.redirect;
    p.request = std::move(next);
    dispatch(std::make_unique<Pending>(std::move(p)), now);
    return;
  }
  learn_responsible(p.request.target, r, now);
  finish_route(p, r, now);
  return;
}

void ChordNode::on_forward_answer(RequestId id, Pending p, const Response& r, Instant now) {
  // A relayed answer from a peer far past the key is forged (ChordConfig::plausible_gaps): the
  // peer it names is routed around, here at the hop before it, as if it had not answered.
  if ((r.status == Status::Ok || r.status == Status::NotFound) && r.responsible &&
      !plausible(p.request.target, r.responsible->id)) {
    ++stats_.implausible;
    env_.log(LogLevel::Debug, "chord: " + r.responsible->id.short_hex() + " claims " + p.request.target.short_hex() +
                                  ", far from it: routed around");
    const Peer forger = *r.responsible;
    const NodeId next_hop = p.to.id;
    pending_[id] = std::make_unique<Pending>(std::move(p));  // back, for on_failure to route around its next hop
    if (forger.id != next_hop) peer_failed(forger, now);
    on_failure(id, now);
    return;
  }
  learn_responsible(p.request.target, r, now);
  transport_.reply(p.reply, r, now);
  return;
}

void ChordNode::on_ping_answer(const Pending& p, const Response& r, Instant now) {
  // Our predecessor's predecessors follow it in our list.
  auto pred = table_.predecessor();
  if (!pred || pred->id != p.to.id || r.status != Status::Ok) return;
  std::vector<Peer> rest;
  for (const auto& q : r.predecessors) {
    if (q.id != table_.self().id && !recently_failed(q.id, now)) rest.push_back(q);
  }
  table_.set_predecessors(*pred, rest);
  return;
}

void ChordNode::on_failure(RequestId id, Instant now, bool hop_alive) {
  const TableChecked checked(table_);
  auto* found = pending_.find(id);
  if (found == nullptr) return;
  SuccessorWatch watch(table_, env_, "a failure");
  Pending p = std::move(**found);
  pending_.erase(id);
  ++stats_.failures;
  if (hop_alive) ++stats_.late_answers;
  auto written_off = [&] {
    if (!hop_alive) peer_failed(p.to, now);
  };
  switch (p.kind) {
    case Kind::Stabilize:
      stabilize_in_flight_ = false;
      written_off();
      return;
    case Kind::JoinLookup:
    case Kind::Join:
      next_join_attempt_ = now + std::min(cfg_.stabilize_interval, seconds(1));  // try the next bootstrap soon
      return;
    case Kind::Gateway: {
      // The gateway did not answer: the next one (it is the relay's flow to fail, not a peer's).
      ++next_gateway_;
      if (!hop_alive && gateway_silent_) gateway_silent_(p.to.addr, now);
      if (++p.tries >= cfg_.route_retries || gateways_.size() < 2) {
        Response fail;
        fail.status = Status::Unavailable;
        fail.reason = "Relay Peer Did Not Answer";
        fail.responder = table_.self();
        finish_route(p, fail, now);
        return;
      }
      p.to = Peer{NodeId{}, gateways_[next_gateway_ % gateways_.size()]};
      dispatch(std::make_unique<Pending>(std::move(p)), now);
      return;
    }
    case Kind::ClientRoute:
    case Kind::Forward: {
      written_off();
      if (++p.tries >= cfg_.route_retries) {
        Response fail;
        fail.status = Status::Unavailable;
        fail.reason = "No Route To Responsible Peer";
        fail.responder = table_.self();
        if (p.kind == Kind::Forward) {
          transport_.reply(p.reply, fail, now);
        } else {
          finish_route(p, fail, now);
        }
        return;
      }
      // Route around the failed peer at once, and have the peers further on do the same: one that
      // still lists it (it may be alive to them, dropping only what it should route) would walk
      // the request back to it.
      auto& ex_list = p.request.exclude;
      if (ex_list.size() < kMaxExcluded && !is_excluded(ex_list, p.to.id)) {
        ex_list.push_back(p.to.id);
      }
      const Excluded ex(ex_list);
      if (p.kind == Kind::Forward && table_.responsible_for(p.request.target, p.request.final_hop, ex)) {
        transport_.reply(p.reply, execute(p.request, now), now);
        return;
      }
      p.request.final_hop = table_.successor_responsible(p.request.target, ex);
      p.to = p.request.final_hop ? table_.successor(ex)
                                 : table_.next_hop(p.request.target, cfg_.route_via_successor_list, ex);
      if (auto detour = attach_detour(p.request, p.to, ex); detour && p.to.id != table_.self().id) {
        p.to = *detour;
        p.request.final_hop = false;
      }
      if (p.to.id == table_.self().id) {
        Response local = execute(p.request, now, p.kind != Kind::Forward);
        if (p.kind == Kind::Forward) {
          transport_.reply(p.reply, local, now);
        } else {
          finish_route(p, local, now);
        }
        return;
      }
      forward(std::move(p), now);
      return;
    }
    case Kind::Leave: --leave_pending_; return;
    case Kind::Turn:
      if (p.cb) p.cb(route_failure(Status::Unavailable, "TURN Service Peer Did Not Answer"));
      return;
    case Kind::Notify:
    case Kind::PingPred:
    case Kind::Replicate: written_off(); return;
  }
}

}  // namespace p2psip::dht
