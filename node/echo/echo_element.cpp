#include "node/echo/echo_element.hpp"

#include <algorithm>
#include <cstdio>

#include "node/sip/headers.hpp"

namespace p2psip::echo {

using sip::HeaderId;
using sip::Message;
using sip::Method;

EchoElement::EchoElement(Environment& env, EchoConfig config, sip::TimerConfig timers, sip::Limits limits)
    : env_(env), cfg_(std::move(config)), layer_(env, *this, timers, limits) {}

void EchoElement::receive_datagram(std::string_view bytes, const Endpoint& from, Instant now) {
  layer_.receive_datagram(bytes, from, now);
}
void EchoElement::receive(const Message& m, const Endpoint& from, Instant now) {
  layer_.receive(m, from, now);
}
void EchoElement::answer_malformed(std::string_view raw, const sip::ParseError& e, const Endpoint& from) {
  layer_.answer_malformed(raw, e, from);
}

std::string EchoElement::new_tag() {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(env_.secure_random() & 0xffffffffffffull));
  return buf;
}

std::string EchoElement::dialog_key(const Message& m, std::string_view local_tag) const {
  // A UAS dialog is identified by Call-ID, the remote (From) tag and the local (To) tag (§12).
  std::string_view from_tag;
  if (auto f = sip::parse_name_address(m.header(HeaderId::From).value_or(""))) {
    from_tag = f->params.get("tag").value_or("");
  }
  std::string key(m.header(HeaderId::CallId).value_or(""));
  key.append("|").append(from_tag).append("|").append(local_tag);
  return key;
}

void EchoElement::on_request(sip::TransactionId id, const Message& req, const Endpoint& from, Instant now) {
  auto to = sip::parse_name_address(req.header(HeaderId::To).value_or(""));
  std::string_view to_tag = to ? to->params.get("tag").value_or("") : std::string_view();
  if (auto rej = sip::check_request_capabilities(req, cfg_.capabilities)) {
    ++stats_.rejected;
    layer_.respond(id, sip::make_rejection(req, *rej, new_tag()), now);
    return;
  }
  switch (req.method_id()) {
    case Method::Options: {
      ++stats_.options;
      Message ok = sip::make_response(req, 200, {}, new_tag());
      std::string allow;
      for (const auto& m : cfg_.capabilities.methods) allow += (allow.empty() ? "" : ", ") + m;
      ok.add_header(HeaderId::Allow, allow);
      ok.add_header(HeaderId::Accept, "application/sdp");
      layer_.respond(id, ok, now);
      return;
    }
    case Method::Invite: {
      ++stats_.invites;
      if (!to_tag.empty()) {
        // A re-INVITE: answered inside its dialog, 481 if there is none (§12.2.2).
        auto it = dialogs_.find(dialog_key(req, to_tag));
        if (it == dialogs_.end()) {
          layer_.respond(id, sip::make_response(req, 481), now);
          return;
        }
        Message ok = sip::make_response(req, 200);
        ok.set_body("application/sdp", req.body());
        ok.add_header(HeaderId::Contact, it->second.ok.header(HeaderId::Contact).value_or(""));
        layer_.respond(id, ok, now);
        return;
      }
      if (dialogs_.size() >= cfg_.max_dialogs) {
        ++stats_.rejected;
        Message busy = sip::make_response(req, 503, "Too Many Dialogs", new_tag());
        busy.add_header(HeaderId::RetryAfter, "5");
        layer_.respond(id, busy, now);
        return;
      }
      Dialog d;
      d.invite = id;
      d.peer = from;
      d.local_tag = new_tag();
      layer_.respond(id, sip::make_response(req, 180, {}, d.local_tag), now);
      Message ok = sip::make_response(req, 200, {}, d.local_tag);
      std::string contact = "<sip:echo@" + cfg_.contact_host + ":" + std::to_string(cfg_.contact_port);
      if (from.transport == Transport::Tcp) contact += ";transport=tcp";
      ok.add_header(HeaderId::Contact, contact + ">");
      req.for_each(HeaderId::RecordRoute, [&](std::string_view rr) { ok.add_header(HeaderId::RecordRoute, rr); });
      // The echo: the offer's session description comes back as the answer.
      if (!req.body().empty()) ok.set_body("application/sdp", req.body());
      d.ok = std::move(ok);
      d.answer_at = now + cfg_.answer_delay;
      auto& stored = dialogs_[dialog_key(req, d.local_tag)] = std::move(d);
      if (cfg_.answer_delay.count() == 0) answer(stored, now);
      return;
    }
    case Method::Bye: {
      auto it = dialogs_.find(dialog_key(req, to_tag));
      if (it == dialogs_.end()) {
        layer_.respond(id, sip::make_response(req, 481), now);
        return;
      }
      ++stats_.byes;
      dialogs_.erase(it);
      layer_.respond(id, sip::make_response(req, 200), now);
      return;
    }
    case Method::Cancel: {
      // §9.2: 481 without a matching INVITE; otherwise 200, and 487 to the INVITE if still pending.
      auto invite = layer_.find_invite_for_cancel(req);
      if (!invite) {
        layer_.respond(id, sip::make_response(req, 481), now);
        return;
      }
      ++stats_.cancels;
      layer_.respond(id, sip::make_response(req, 200), now);
      for (auto it = dialogs_.begin(); it != dialogs_.end(); ++it) {
        if (it->second.invite == *invite && !it->second.answered) {
          const Message* inv = layer_.request_of(*invite);
          if (inv) layer_.respond(*invite, sip::make_response(*inv, 487, {}, it->second.local_tag), now);
          dialogs_.erase(it);
          break;
        }
      }
      return;
    }
    default:
      // Methods in the capability list with no behaviour here (ACK never arrives as a request).
      layer_.respond(id, sip::make_response(req, 501), now);
      return;
  }
}

void EchoElement::answer(Dialog& d, Instant now) {
  d.answered = true;
  ++stats_.answered;
  layer_.respond(d.invite, d.ok, now);
  // §13.3.1.4: retransmit the 2xx at T1, doubling up to T2, until the ACK; give up at 64*T1.
  if (!is_reliable(d.peer.transport)) {
    d.interval = layer_.timers().t1;
    d.next_retransmit = now + d.interval;
  }
  d.give_up = now + layer_.timers().t1 * 64;
}

void EchoElement::on_ack(sip::TransactionId, const Message& ack, const Endpoint&, Instant) {
  auto to = sip::parse_name_address(ack.header(HeaderId::To).value_or(""));
  std::string_view to_tag = to ? to->params.get("tag").value_or("") : std::string_view();
  auto it = dialogs_.find(dialog_key(ack, to_tag));
  if (it == dialogs_.end() || it->second.confirmed) return;
  ++stats_.acks;
  it->second.confirmed = true;
  it->second.next_retransmit = kInstantMax;
}

void EchoElement::on_response(sip::TransactionId, const Message&, Instant) {}
void EchoElement::on_timeout(sip::TransactionId, Instant) {}
void EchoElement::on_transport_error(sip::TransactionId, Instant) {}

void EchoElement::advance(Instant now) {
  layer_.advance(now);
  for (auto it = dialogs_.begin(); it != dialogs_.end();) {
    Dialog& d = it->second;
    if (!d.answered) {
      if (d.answer_at <= now) answer(d, now);
      ++it;
      continue;
    }
    if (!d.confirmed && d.give_up <= now) {
      ++stats_.ack_timeouts;  // §13.3.1.4: no ACK within 64*T1; the dialog is abandoned
      it = dialogs_.erase(it);
      continue;
    }
    if (d.next_retransmit <= now) {
      ++stats_.ok_retransmissions;
      if (!layer_.respond(d.invite, d.ok, now)) layer_.send_stateless(d.ok, d.peer);
      d.interval = std::min(d.interval * 2, layer_.timers().t2);
      d.next_retransmit = now + d.interval;
    }
    ++it;
  }
}

Instant EchoElement::next_wakeup() const {
  Instant next = layer_.next_wakeup();
  for (const auto& [key, d] : dialogs_) {
    if (!d.answered) next = std::min(next, d.answer_at);
    if (d.answered && !d.confirmed) next = std::min({next, d.next_retransmit, d.give_up});
  }
  return next;
}

}  // namespace p2psip::echo
