// A calling softphone for unit tests: writes INVITE, ACK, BYE and CANCEL as a phone would and keeps
// the dialog's state from the 2xx (RFC 3261 §12.1.2), whatever carries its bytes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/address.hpp"
#include "node/sip/headers.hpp"
#include "node/sip/message.hpp"

namespace p2psip::test {

/// A caller: writes INVITE, ACK, BYE and CANCEL as a phone would, following the dialog's route set.
/// `send` puts text on the wire to the phone's node (its UA side); `received` is what the phone has
/// heard so far.
struct Caller {
  std::function<void(const std::string&)> send;
  Endpoint addr;
  const std::vector<sip::Message>* received = nullptr;
  std::string call_id;
  std::string domain = "demo";  ///< the overlay: alice calls bob there
  int cseq = 1;
  std::string branch = {};
  std::vector<std::string> route_set = {};  // from the 2xx's Record-Route, reversed (§12.1.2)
  std::string remote_target = {}, to_tag = {};
  std::string extra = {};  // more header lines for the INVITE (credentials)

  std::string headers(const std::string& method, const std::string& ruri, int n, const std::string& br,
                      bool with_routes) const {
    std::string t = method + " " + ruri + " SIP/2.0\r\nVia: SIP/2.0/UDP " + addr.host_port() + ";branch=" + br +
                    ";rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@" + domain + ">;tag=caller1\r\nTo: <sip:bob@" +
                    domain + ">" + (to_tag.empty() ? "" : ";tag=" + to_tag) + "\r\nCall-ID: " + call_id +
                    "\r\nCSeq: " + std::to_string(n) + " " + method + "\r\n";
    if (with_routes) {
      for (const auto& r : route_set) t += "Route: " + r + "\r\n";
    }
    return t;
  }
  void invite(std::string target = {}) {
    if (target.empty()) target = "sip:bob@" + domain;
    branch = "z9hG4bKinv" + call_id;
    std::string sdp =
        "v=0\r\no=- 1 1 IN IP4 127.0.4.1\r\ns=-\r\nc=IN IP4 127.0.4.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    send(headers("INVITE", target, cseq, branch, false) + extra + "Contact: <sip:alice@" + addr.host_port() +
         ">\r\nContent-Type: application/sdp\r\nContent-Length: " + std::to_string(sdp.size()) + "\r\n\r\n" + sdp);
  }
  void cancel() { send(headers("CANCEL", "sip:bob@" + domain, cseq, branch, false) + "Content-Length: 0\r\n\r\n"); }
  /// Takes the dialog from the 2xx: remote target, To tag, route set.
  void learn(const sip::Message& ok) {
    auto contact = sip::parse_name_address(ok.header(sip::HeaderId::Contact).value_or(""));
    remote_target = contact ? std::string(contact->uri.text) : "";
    auto to = sip::parse_name_address(ok.header(sip::HeaderId::To).value_or(""));
    to_tag = to ? std::string(to->params.get("tag").value_or("")) : "";
    std::vector<sip::NameAddress> rr;
    ok.for_each(sip::HeaderId::RecordRoute, [&](std::string_view v) { sip::parse_name_address_list(v, rr, false); });
    route_set.clear();
    for (auto it = rr.rbegin(); it != rr.rend(); ++it) route_set.push_back("<" + std::string(it->uri.text) + ">");
  }
  /// In a dialog a phone sends to the first route (loose routing, §12.2.1.1).
  void in_dialog(const std::string& method, int n) {
    send(headers(method, remote_target, n, "z9hG4bK" + method + call_id, true) + "Content-Length: 0\r\n\r\n");
  }
  [[nodiscard]] bool ours(const sip::Message& m, const std::string& method) const {
    auto cs = sip::parse_cseq(m.header(sip::HeaderId::CSeq).value_or(""));
    return m.is_response() && cs && cs->method == method && m.header(sip::HeaderId::CallId) == call_id;
  }
  /// Statuses of this call's responses to `method`, in order, without 100 Trying (hop by hop,
  /// and optional when a provisional follows quickly) and without retransmissions (this caller
  /// does not ACK, so the final response repeats).
  std::vector<int> statuses(const std::string& method) const {
    std::vector<int> out;
    for (const auto& m : *received) {
      if (ours(m, method) && m.status() != 100 && (out.empty() || out.back() != m.status())) out.push_back(m.status());
    }
    return out;
  }
  const sip::Message* final_for(const std::string& method) const {
    for (const auto& m : *received) {
      if (ours(m, method) && m.status() >= 200) return &m;
    }
    return nullptr;
  }
};

}  // namespace p2psip::test
