#include "sim/phones.hpp"

#include <cmath>

#include "node/sip/headers.hpp"
#include "node/sip/validate.hpp"
#include "sim/events.hpp"

namespace p2psip::sim {

namespace {
echo::EchoConfig callee_config(const SimPhone::Config& c) {
  echo::EchoConfig e;
  e.contact_host = c.self.ip.to_string();
  e.contact_port = c.self.port;
  e.answer_delay = c.answer_delay;
  return e;
}
const char kOffer[] =
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 "
    "PCMU/8000\r\n";
}  // namespace

SimPhone::SimPhone(Environment& env, Config config)
    : env_(env), cfg_(std::move(config)), layer_(env, *this), callee_(env, callee_config(cfg_)) {
  reg_call_id_ = token() + "@" + cfg_.self.host_port();
}

SimPhone::~SimPhone() = default;

std::string SimPhone::token() {
  return hex64(env_.secure_random());
}

std::string SimPhone::headers(std::string_view method, std::string_view ruri, std::string_view to,
                              const std::string& call_id, const std::string& from_tag, int cseq,
                              const std::vector<std::string>& routes) {
  std::string t;
  t.append(method).append(" ").append(ruri).append(" SIP/2.0\r\nVia: SIP/2.0/UDP ");
  t.append(cfg_.self.host_port()).append(";branch=").append(layer_.make_branch()).append(";rport\r\n");
  t.append("Max-Forwards: 70\r\nFrom: <sip:").append(cfg_.user).append("@").append(cfg_.domain);
  t.append(">;tag=").append(from_tag).append("\r\nTo: ").append(to).append("\r\nCall-ID: ").append(call_id);
  t.append("\r\nCSeq: ").append(std::to_string(cseq)).append(" ").append(method).append("\r\n");
  for (const auto& r : routes) t.append("Route: ").append(r).append("\r\n");
  return t;
}

void SimPhone::register_now(Instant now) {
  const std::string aor = "<sip:" + cfg_.user + "@" + cfg_.domain + ">";
  std::string text = headers("REGISTER", "sip:" + cfg_.domain, aor, reg_call_id_, "reg", ++reg_cseq_, {});
  text += "Contact: <sip:" + cfg_.user + "@" + cfg_.self.host_port() +
          ">\r\nExpires: " + std::to_string(cfg_.expires_s) + "\r\nContent-Length: 0\r\n\r\n";
  auto m = sip::parse_datagram(text);
  if (!m) return;
  auto sent = layer_.send_request(*m, cfg_.proxy, now);
  if (!sent) {
    if (on_registered) on_registered(false);
    return;
  }
  registration_ = *sent;
}

bool SimPhone::call(const std::string& callee, Instant now) {
  if (call_) return false;
  Call c;
  c.call_id = token() + "@" + cfg_.self.host_port();
  c.from_tag = token();
  c.sent = now;
  c.to_uri = "sip:" + callee + "@" + cfg_.domain;
  c.cseq = ++cseq_;
  std::string text = headers("INVITE", c.to_uri, "<" + c.to_uri + ">", c.call_id, c.from_tag, c.cseq, {});
  text += "Contact: <sip:" + cfg_.user + "@" + cfg_.self.host_port() +
          ">\r\nContent-Type: application/sdp\r\nContent-Length: " + std::to_string(sizeof kOffer - 1) + "\r\n\r\n" +
          kOffer;
  auto m = sip::parse_datagram(text);
  if (!m) return false;
  call_ = std::move(c);
  auto sent = layer_.send_request(*m, cfg_.proxy, now);
  if (!sent) {
    end_call(503, now);
    return true;
  }
  call_->invite = *sent;
  return true;
}

void SimPhone::end_call(int status, Instant now) {
  (void)now;
  if (!call_) return;
  CallOutcome out = call_->outcome;
  out.status = status;
  call_.reset();
  if (on_call_end) on_call_end(out);
}

void SimPhone::send_ack(const sip::Message& ok, Instant now) {
  (void)now;
  Call& c = *call_;
  // RFC 3261 §13.2.2.4: the ACK for a 2xx goes along the dialog's route set, outside any
  // transaction; the INVITE's CSeq number, a new branch.
  const std::string to(ok.header(sip::HeaderId::To).value_or(""));
  std::string text = headers("ACK", c.remote_target, to, c.call_id, c.from_tag, c.cseq, c.route_set);
  text += "Content-Length: 0\r\n\r\n";
  if (auto m = sip::parse_datagram(text)) layer_.send_stateless(*m, cfg_.proxy);
}

void SimPhone::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  // Two cores on one address: responses answer the caller side's requests, requests are the
  // callee side's.
  if (bytes.substr(0, 8) == "SIP/2.0 ") {
    layer_.receive_datagram(bytes, from, now);
  } else {
    callee_.receive_datagram(bytes, from, now);
  }
}

void SimPhone::advance(Instant now) {
  layer_.advance(now);
  callee_.advance(now);
  if (call_ && call_->bye_at <= now) {
    // The caller hangs up: BYE along the route set (§15.1.1). The call counted as answered when
    // the 200 came; what the BYE gets does not change it.
    Call& c = *call_;
    c.bye_at = kInstantMax;
    const int status = c.outcome.status;
    std::string text = headers("BYE", c.remote_target, "<" + c.to_uri + ">;tag=" + c.to_tag, c.call_id, c.from_tag,
                               ++cseq_, c.route_set);
    text += "Content-Length: 0\r\n\r\n";
    if (auto m = sip::parse_datagram(text)) (void)layer_.send_request(*m, cfg_.proxy, now);
    end_call(status, now);
  }
}

Instant SimPhone::next_wakeup() const {
  Instant next = std::min(layer_.next_wakeup(), callee_.next_wakeup());
  if (call_) next = std::min(next, call_->bye_at);
  return next;
}

void SimPhone::on_request(sip::TransactionId, const sip::Message&, const Endpoint&, Instant) {}
void SimPhone::on_ack(sip::TransactionId, const sip::Message&, const Endpoint&, Instant) {}

void SimPhone::on_response(sip::TransactionId id, const sip::Message& response, Instant now) {
  const int status = response.status();
  if (id == registration_) {
    if (status < 200) return;
    registration_ = 0;
    if (on_registered) on_registered(status < 300);
    return;
  }
  if (!call_ || id != call_->invite) return;  // a BYE's answer, or a call already over
  Call& c = *call_;
  if (status == 180 && !c.outcome.rang) {
    c.outcome.rang = true;
    c.outcome.setup = now - c.sent;
    return;
  }
  if (status < 200) return;
  if (status < 300) {
    if (!c.answered) {
      // The dialog as a phone keeps it (§12.1.2): remote target, To tag, route set.
      c.answered = true;
      c.outcome.status = status;
      if (auto contact = sip::parse_name_address(response.header(sip::HeaderId::Contact).value_or(""))) {
        c.remote_target = std::string(contact->uri.text);
      }
      if (auto to = sip::parse_name_address(response.header(sip::HeaderId::To).value_or(""))) {
        c.to_tag = std::string(to->params.get("tag").value_or(""));
      }
      std::vector<sip::NameAddress> rr;
      response.for_each(sip::HeaderId::RecordRoute,
                        [&](std::string_view v) { sip::parse_name_address_list(v, rr, false); });
      for (auto it = rr.rbegin(); it != rr.rend(); ++it) c.route_set.push_back("<" + std::string(it->uri.text) + ">");
      c.bye_at = now + cfg_.call_duration;
    }
    send_ack(response, now);  // every 2xx, retransmissions too (§13.2.2.4)
    return;
  }
  end_call(status, now);
}

void SimPhone::on_timeout(sip::TransactionId id, Instant now) {
  if (id == registration_) {
    registration_ = 0;
    if (on_registered) on_registered(false);
    return;
  }
  if (call_ && id == call_->invite && !call_->answered) end_call(408, now);
}

void SimPhone::on_transport_error(sip::TransactionId id, Instant now) {
  on_timeout(id, now);
}

// ---- the telephony model ---------------------------------------------------------------------------

Telephony::Telephony(const Scenario& sc, Engine& engine, Metrics& metrics)
    : sc_(sc),
      engine_(engine),
      metrics_(metrics),
      who_(sc.seed, 6),
      calls_(sc.seed, 7),
      end_(Instant(
          Duration(static_cast<std::int64_t>(std::max(sc.workload_start_s, sc.duration_s - sc.drain_s) * 1e6)))) {}

bool Telephony::decide() {
  return sc_.phones.fraction > 0 && who_.uniform() < sc_.phones.fraction;
}

void Telephony::joined(std::uint32_t host, SimPhone& phone) {
  CallResults& calls = metrics_.results.calls;
  phone.on_registered = [this, host, &calls](bool ok) {
    if (!ok) {
      ++calls.registrations_failed;
      return;
    }
    ++calls.registrations_ok;
    if (position_.count(host)) return;  // a refresh
    position_[host] = registered_.size();
    registered_.push_back(host);
    if (sc_.phones.calls_per_phone_per_s <= 0) return;
    const Instant from =
        std::max(engine_.now(), Instant(Duration(static_cast<std::int64_t>(sc_.workload_start_s * 1e6))));
    const double gap_s = -std::log(calls_.uniform_open0()) / sc_.phones.calls_per_phone_per_s;
    engine_.push(from + Duration(static_cast<std::int64_t>(gap_s * 1e6)), kind(EventKind::Call), host);
  };
  phone.on_call_end = [this](const CallOutcome& o) {
    CallResults& c = metrics_.results.calls;
    if (o.rang) c.setup_ms.push_back(static_cast<float>(static_cast<double>(o.setup.count()) / 1000.0));
    if (o.status >= 200 && o.status < 300) {
      ++c.answered;
    } else {
      ++c.failed;
      ++c.failed_by_status[o.status];
    }
  };
  phone.register_now(engine_.now());
}

void Telephony::died(std::uint32_t host) {
  auto it = position_.find(host);
  if (it == position_.end()) return;
  const std::size_t at = it->second;
  const std::uint32_t last = registered_.back();
  registered_[at] = last;
  position_[last] = at;
  registered_.pop_back();
  position_.erase(host);
}

void Telephony::call_event(std::uint32_t host, SimPhone* phone) {
  if (phone == nullptr || !position_.count(host) || engine_.now() >= end_) return;  // gone, or the workload is over
  const double gap_s = -std::log(calls_.uniform_open0()) / sc_.phones.calls_per_phone_per_s;
  engine_.push(engine_.now() + Duration(static_cast<std::int64_t>(gap_s * 1e6)), kind(EventKind::Call), host);
  CallResults& c = metrics_.results.calls;
  if (registered_.size() < 2) return;
  if (phone->busy()) {
    ++c.skipped_busy;
    return;
  }
  // Someone else registered now (the callee may die before the INVITE reaches it: that is part of
  // what is measured).
  std::uint32_t callee = host;
  while (callee == host) callee = registered_[calls_.below(registered_.size())];
  ++c.attempted;
  phone->call(user_of(callee), engine_.now());
}

}  // namespace p2psip::sim
