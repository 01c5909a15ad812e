#include "nat/stun_client.hpp"

#include <algorithm>

namespace p2psip::nat {

StunClient::StunClient(Environment& env, StunClientConfig cfg) : env_(env), cfg_(cfg) {}

StunTransactionId StunClient::new_id() {
  StunTransactionId id{};
  env_.secure_bytes(id.data(), id.size());
  return id;
}

Result<StunTransactionId, StunSendError> StunClient::binding(const Endpoint& to, Instant now, Done done,
                                                             bool fingerprint) {
  const StunTransactionId id = new_id();
  StunBuilder b(StunClass::Request, method::Binding, id);
  if (fingerprint) b.add_fingerprint();
  return request(to, id, std::move(b).finish(), now, std::move(done));
}

Result<StunTransactionId, StunSendError> StunClient::request(const Endpoint& to, const StunTransactionId& id,
                                                             std::string bytes, Instant now, Done done) {
  if (txns_.size() >= cfg_.max_outstanding) {
    ++stats_.refused;
    return unexpected(StunSendError::TooMany);
  }
  if (!env_.send(to, bytes)) {
    ++stats_.refused;
    return unexpected(StunSendError::TransportRefused);
  }
  ++stats_.started;
  Txn t{id, to, std::move(bytes), std::move(done), now, now, cfg_.rto, 1};
  // RFC 8489 §6.2.1: on UDP the next send is RTO later (then 2·RTO, 4·RTO...); §6.2.2: on TCP and
  // TLS there is no retransmission, only Ti.
  if (is_reliable(to.transport)) {
    t.next = now + cfg_.reliable_timeout;
    t.sends = cfg_.rc;  // nothing more to send
  } else {
    t.next = now + cfg_.rto;
    if (cfg_.rc <= 1) t.next = now + cfg_.rto * cfg_.rm;
  }
  txns_.push_back(std::move(t));
  return id;
}

void StunClient::finish(std::size_t index, StunOutcome& outcome, Instant now) {
  Txn t = std::move(txns_[index]);
  txns_.erase(txns_.begin() + static_cast<std::ptrdiff_t>(index));
  outcome.id = t.id;
  outcome.to = t.to;
  outcome.at = now;
  outcome.sends = t.sends;
  switch (outcome.kind) {
    case StunOutcome::Kind::Success: ++stats_.succeeded; break;
    case StunOutcome::Kind::ErrorResponse: ++stats_.error_responses; break;
    case StunOutcome::Kind::Timeout: ++stats_.timeouts; break;
    case StunOutcome::Kind::TransportError: ++stats_.transport_errors; break;
  }
  if (t.done) t.done(outcome);
}

bool StunClient::receive(const StunMessage& response, const Endpoint& from, Instant now) {
  if (response.cls != StunClass::Success && response.cls != StunClass::Error) return false;
  for (std::size_t i = 0; i < txns_.size(); ++i) {
    const Txn& t = txns_[i];
    if (t.id != response.id) continue;
    // The answer must come from where the request went (RFC 8489 §6.3.3 leaves this to the
    // usage; for a reflexive address it is what makes the answer mean anything).
    if (!(t.to.ip == from.ip && t.to.port == from.port)) break;
    StunOutcome o;
    o.rtt = now - t.started;
    o.response = &response;
    if (response.cls == StunClass::Success) {
      o.kind = StunOutcome::Kind::Success;
      o.mapped = response.mapped_address(t.to.transport);
    } else {
      o.kind = StunOutcome::Kind::ErrorResponse;
      if (auto e = response.error_code()) {
        o.error = e->first;
        o.reason = std::string(e->second);
      }
    }
    finish(i, o, now);
    return true;
  }
  ++stats_.stray_responses;
  return false;
}

void StunClient::advance(Instant now) {
  // Collect what is due first, then act: callbacks may start or cancel transactions.
  std::vector<StunTransactionId> due;
  for (const auto& t : txns_) {
    if (t.next <= now) due.push_back(t.id);
  }
  for (const auto& id : due) {
    auto it = std::find_if(txns_.begin(), txns_.end(), [&](const Txn& t) { return t.id == id; });
    if (it == txns_.end() || it->next > now) continue;
    const auto index = static_cast<std::size_t>(it - txns_.begin());
    if (it->sends >= cfg_.rc) {
      StunOutcome o;
      o.kind = StunOutcome::Kind::Timeout;
      finish(index, o, now);
      continue;
    }
    if (!env_.send(it->to, it->bytes)) {
      StunOutcome o;
      o.kind = StunOutcome::Kind::TransportError;
      finish(index, o, now);
      continue;
    }
    ++stats_.retransmissions;
    ++it->sends;
    it->interval *= 2;
    // After the Rc-th request, wait Rm·RTO for its answer (RFC 8489 §6.2.1: 39.5 s in all at 500 ms).
    it->next = now + (it->sends >= cfg_.rc ? cfg_.rto * cfg_.rm : it->interval);
  }
}

Instant StunClient::next_wakeup() const {
  Instant n = kInstantMax;
  for (const auto& t : txns_) n = std::min(n, t.next);
  return n;
}

void StunClient::cancel(const StunTransactionId& id) {
  auto it = std::find_if(txns_.begin(), txns_.end(), [&](const Txn& t) { return t.id == id; });
  if (it != txns_.end()) txns_.erase(it);
}

}  // namespace p2psip::nat
