#include "tools/node_status.hpp"

#include <sodium.h>

#include <map>

namespace p2psip::tools {
namespace {

Json peer_json(const dht::Peer& p) {
  return Json{{"id", p.id.hex()}, {"addr", p.addr.host_port()}};
}

Json peers_json(const std::vector<dht::Peer>& peers) {
  Json out = Json::array();
  for (const auto& p : peers) out.push_back(peer_json(p));
  return out;
}

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // cut short
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    const std::uint32_t least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[extra] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace

std::string json_text(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void put_bytes(Json& j, const std::string& name, const std::string& bytes) {
  if (valid_utf8(bytes)) {
    j[name] = bytes;
    return;
  }
  std::string b64(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  b64.resize(b64.size() - 1);  // the terminating NUL
  j[name + "_base64"] = b64;
}

Json status_json(const peer::PeerStatus& s, const runtime::RuntimeStats& overlay, const runtime::RuntimeStats* phones) {
  const auto& os = s.messages;
  const auto& ts = s.transactions;
  const auto& cs = s.chord;
  Json j;
  j["node_id"] = s.id.hex();
  j["overlay"] = s.overlay;
  j["listen"] = s.address.host_port();
  j["joined"] = s.joined;
  j["predecessor"] = s.predecessors.empty() ? Json(nullptr) : peer_json(s.predecessors.front());
  j["predecessors"] = peers_json(s.predecessors);
  j["successors"] = peers_json(s.successors);
  j["fingers"] = s.fingers;
  j["records"] = s.records;
  j["uptime_s"] = to_millis(s.uptime) / 1000;
  j["messages"] = Json{{"requests_sent", os.requests_sent},
                       {"requests_received", os.requests_received},
                       {"responses_sent", os.responses_sent},
                       {"responses_received", os.responses_received},
                       {"rejected", os.rejected},
                       {"throttled", os.throttled},
                       {"retransmissions", ts.retransmissions_sent},
                       {"timeouts", ts.timeouts},
                       {"malformed_dropped", ts.malformed_dropped},
                       {"malformed_answered", ts.malformed_answered},
                       {"datagrams_out", overlay.datagrams_out},
                       {"stream_messages_out", overlay.stream_messages_out},
                       {"bytes_in", overlay.bytes_in},
                       {"bytes_out", overlay.bytes_out}};
  j["chord"] = Json{{"routes_started", cs.routes_started},
                    {"routes_ok", cs.routes_ok},
                    {"routes_failed", cs.routes_failed},
                    {"forwarded", cs.forwarded},
                    {"peers_failed", cs.peers_failed},
                    {"late_answers", cs.late_answers},
                    {"stabilize_rounds", cs.stabilize_rounds},
                    {"records_replicated", cs.records_replicated},
                    {"records_refused", cs.records_refused},
                    {"records_disbelieved", cs.records_disbelieved},
                    {"records_over_quota", cs.records_over_quota}};
  if (s.security) {
    const auto& sec = *s.security;
    j["security"] = Json{{"mode", sec.development ? "development" : "enrolled"},
                         {"users", sec.users},
                         {"signatures_checked", sec.records.signatures_checked},
                         {"certificates_checked", sec.records.certificates_checked},
                         {"messages_signed", sec.messages.signed_messages},
                         {"messages_verified", sec.messages.verified},
                         {"messages_refused", sec.messages.refused},
                         {"certificates_sent", sec.messages.certificates_sent},
                         {"certificates_learned", sec.messages.certificates_learned},
                         {"tls_links_accepted", sec.messages.links_accepted},
                         {"tls_links_refused", sec.messages.links_refused},
                         {"unauthenticated", os.unauthenticated},
                         {"resent_with_certificate", os.resent}};
  } else {
    j["security"] = nullptr;
  }
  if (s.phones) {
    const auto& p = *s.phones;
    const auto& st = p.stats;
    j["ua"] = Json{{"listen", p.address.host_port()},
                   {"domain", s.overlay},
                   {"users", p.users},
                   {"bindings", p.bindings},
                   {"entries_in_overlay", p.entries_in_overlay},
                   {"registers", st.registers},
                   {"registers_ok", st.registers_ok},
                   {"registers_rejected", st.registers_rejected},
                   {"queries", st.queries},
                   {"entries_stored", st.entries_stored},
                   {"entries_kept", st.entries_kept},
                   {"entry_refreshes", st.refreshes},
                   {"entries_removed", st.entries_removed},
                   {"store_failures", st.store_failures},
                   {"requests_rejected", st.requests_rejected},
                   {"proxied", st.proxied},
                   {"lookups", st.lookups},
                   {"lookups_not_found", st.lookups_not_found},
                   {"lookups_failed", st.lookups_failed},
                   {"branches", st.branches},
                   {"calls_answered", st.calls_answered},
                   {"cancels", st.cancels},
                   {"challenges", st.challenges},
                   {"auth_refused", st.auth_refused},
                   {"acks_forwarded", st.acks_forwarded},
                   {"branch_failures", st.branch_timeouts},
                   {"branches_via_relay", st.via_relay},
                   {"requests_in_progress", p.requests_in_progress},
                   {"response_contexts", p.response_contexts},
                   {"users_list", p.users_list}};
    if (phones != nullptr) {
      j["ua"]["datagrams_out"] = phones->datagrams_out;
      j["ua"]["bytes_in"] = phones->bytes_in;
      j["ua"]["bytes_out"] = phones->bytes_out;
    }
  } else {
    j["ua"] = nullptr;
  }
  const auto& n = s.nat;
  Json nat;
  nat["class"] = n.checked ? std::string(nat::nat_class_name(n.reach.nat_class)) : std::string("not checked");
  nat["reflexive"] = n.reach.reflexive ? Json(n.reach.reflexive->host_port()) : Json(nullptr);
  nat["checking"] = n.reach.checking;
  nat["checks"] = n.reach.checks;
  Json observed = Json::array();
  for (const auto& o : n.reach.observations) {
    observed.push_back(Json{{"peer", o.peer.host_port()},
                            {"mapped", o.mapped ? Json(o.mapped->host_port()) : Json(nullptr)},
                            {"rtt_ms", o.mapped ? Json(to_millis(o.rtt)) : Json(nullptr)}});
  }
  nat["observed"] = observed;
  nat["stun"] = Json{{"bindings_answered", n.bindings_answered},
                     {"indications", n.indications},
                     {"dropped", n.dropped},
                     {"requests", n.client.started},
                     {"answered", n.client.succeeded},
                     {"error_answers", n.client.error_responses},
                     {"timeouts", n.client.timeouts},
                     {"retransmissions", n.client.retransmissions}};
  nat["role"] = n.role;
  Json flows = Json::array();
  for (const auto& f : n.flows) {
    flows.push_back(Json{{"reg_id", f.reg_id},
                         {"state", std::string(nat::flow_state_name(f.state))},
                         {"relay", f.relay ? Json(f.relay->host_port()) : Json(nullptr)},
                         {"relay_id", f.relay_id.empty() ? Json(nullptr) : Json(f.relay_id)},
                         {"path", f.relay_uri.empty() ? Json(nullptr) : Json(f.relay_uri)},
                         {"mapped", f.mapped ? Json(f.mapped->host_port()) : Json(nullptr)},
                         {"failures", f.failures}});
  }
  nat["flows"] = flows;
  const auto& fs = n.flow_stats;
  nat["flow_stats"] =
      Json{{"registrations", fs.registrations}, {"refusals", fs.refusals}, {"failures", fs.failures},
           {"keepalives", fs.keepalives},       {"pongs", fs.pongs},       {"mapping_changes", fs.mapping_changes}};
  nat["reached"] = Json{{"how", n.reached}, {"via", n.reached_via}};
  Json links = Json::array();
  for (const auto& l : n.links) {
    links.push_back(Json{{"peer", l.peer.id.hex()}, {"addr", l.peer.addr.host_port()}, {"how", l.how}});
  }
  nat["links"] = links;
  Json ice = Json::array();
  for (const auto& l : n.ice) {
    Json one{{"peer", l.peer.host_port()},
             {"state", std::string(nat::link_state_name(l.state))},
             {"initiated", l.initiated},
             {"relayed", l.relayed},
             {"failures", l.failures}};
    if (l.state == nat::LinkState::Up) one["setup_ms"] = to_millis(l.setup);
    if (l.local_type) one["local"] = std::string(nat::candidate_type_name(*l.local_type));
    if (l.remote_type) one["remote"] = std::string(nat::candidate_type_name(*l.remote_type));
    ice.push_back(std::move(one));
  }
  nat["ice"] = ice;
  const auto& is = n.ice_stats;
  nat["ice_stats"] = Json{{"attaches_sent", is.attaches_sent},
                          {"offers_taken", is.offers_taken},
                          {"refused_rate", is.offers_refused_rate},
                          {"refused_full", is.offers_refused_full},
                          {"glare", is.glare},
                          {"up_direct", is.up_direct},
                          {"up_relayed", is.up_relayed},
                          {"failed_attach", is.failed_attach},
                          {"failed_checks", is.failed_checks},
                          {"lost", is.lost},
                          {"closed_idle", is.closed_idle},
                          {"sent", is.sent},
                          {"received", is.received}};
  if (n.turn_service) {
    const auto& t = *n.turn_service;
    Json turn{{"announcing", t.announcing},
              {"entries_stored", t.entries_stored},
              {"credentials_given", t.credentials_given},
              {"requests_refused", t.requests_refused},
              {"discovering", t.discovering},
              {"finds", t.finds},
              {"finds_failed", t.finds_failed}};
    if (!t.announced.empty()) turn["announced"] = t.announced;
    if (!t.using_server.empty()) {
      turn["using"] = Json{{"server", t.using_server}, {"from", t.from_peer}, {"expires_unix", t.expires_unix}};
    }
    if (!t.last_error.empty()) turn["last_error"] = t.last_error;
    nat["turn_service"] = std::move(turn);
  }
  if (n.relay) {
    const auto& r = *n.relay;
    nat["relay"] = Json{{"clients", r.clients},
                        {"flows", r.flows},
                        {"max_clients", r.max_clients},
                        {"registrations", r.stats.registrations},
                        {"refreshes", r.stats.refreshes},
                        {"refused_full", r.stats.refused_full},
                        {"expired", r.stats.expired},
                        {"replaced", r.stats.replaced},
                        {"calls_relayed", r.calls_relayed}};
  } else {
    nat["relay"] = nullptr;
  }
  j["nat"] = nat;
  return j;
}

std::string status_text(const peer::PeerStatus& s) {
  std::string out;
  auto line = [&out](const std::string& label, const std::string& value) {
    out += label;
    out.append(label.size() < 12 ? 12 - label.size() : 1, ' ');
    out += value + "\n";
  };
  line("node", s.id.hex());
  line("overlay", s.overlay + (s.joined ? "" : s.nat.role == "client" ? " (a client: not in the ring)" : " (joining)"));
  line("listen", s.address.host_port());
  line("uptime", std::to_string(to_millis(s.uptime) / 1000) + " s");
  line("predecessor",
       s.predecessors.empty() ? "-" : s.predecessors.front().id.hex() + "  " + s.predecessors.front().addr.host_port());
  for (std::size_t i = 0; i < s.successors.size(); ++i) {
    line(i == 0 ? "successors" : "", s.successors[i].id.hex() + "  " + s.successors[i].addr.host_port());
  }
  if (s.successors.empty()) line("successors", "- (alone)");
  line("fingers", std::to_string(s.fingers) + " distinct");
  {
    const auto& r = s.nat.reach;
    std::string nat = s.nat.checked ? std::string(nat::nat_class_name(r.nat_class)) : std::string("not checked");
    if (r.reflexive) nat += ", seen at " + r.reflexive->host_port();
    if (r.checking) nat += " (checking)";
    line("nat", nat);
    std::string role = s.nat.role;
    if (s.nat.relay) role += ", relaying for " + std::to_string(s.nat.relay->clients) + " clients";
    line("role", role);
    for (const auto& f : s.nat.flows) {
      std::string text = "flow " + std::to_string(f.reg_id) + ": " + std::string(nat::flow_state_name(f.state));
      if (f.relay) text += " via " + f.relay->host_port();
      if (f.mapped) text += ", seen at " + f.mapped->host_port();
      line(f.reg_id == 1 ? "flows" : "", text);
    }
    std::string reached = "directly at " + s.address.host_port();
    if (s.nat.reached == "attach") {
      reached = "by Attach over ICE links at " + s.address.host_port() + "; its phones through relay peers";
      for (const auto& v : s.nat.reached_via) reached += " " + v;
    } else if (s.nat.reached == "relay") {
      reached = s.nat.reached_via.empty() ? std::string("through relay peers (none yet)") : "through relay peers";
      for (const auto& v : s.nat.reached_via) reached += " " + v;
    }
    line("reached", reached);
    std::map<std::string, std::size_t> hows;
    for (const auto& l : s.nat.links) ++hows[l.how];
    std::string links;
    for (const auto& [how, count] : hows) links += (links.empty() ? "" : ", ") + std::to_string(count) + " " + how;
    line("links", links.empty() ? std::string("none") : links);
    if (const auto& t = s.nat.turn_service) {
      std::string turn;
      if (t->announcing)
        turn = "announcing " + t->announced + " (" + std::to_string(t->credentials_given) + " credentials given)";
      if (!t->using_server.empty()) {
        turn += std::string(turn.empty() ? "" : "; ") + "relayed candidates through " + t->using_server +
                ", announced by " + t->from_peer.substr(0, 8);
      } else if (t->discovering) {
        turn += std::string(turn.empty() ? "" : "; ") + "looking for one in the overlay" +
                (t->last_error.empty() ? std::string() : " (" + t->last_error + ")");
      }
      if (!turn.empty()) line("turn", turn);
    }
  }
  line("records", std::to_string(s.records));
  line("softphones", s.phones ? s.phones->address.host_port() + ", " + std::to_string(s.phones->users) + " users, " +
                                    std::to_string(s.phones->bindings) + " bindings"
                              : std::string("off"));
  line("messages", std::to_string(s.messages.requests_sent) + " requests sent, " +
                       std::to_string(s.messages.requests_received) + " received, " +
                       std::to_string(s.transactions.timeouts) + " timeouts");
  return out;
}

Json route_json(const std::string& key, dht::RouteOp op, const dht::RouteResult& r, int& http) {
  Json j;
  j["key"] = key;
  j["id"] = dht::NodeId::hash(key).hex();
  j["status"] = dht::code(r.status);
  j["hops"] = r.hops;
  j["latency_ms"] = static_cast<double>(r.latency.count()) / 1000.0;
  j["responsible"] = r.responsible ? peer_json(*r.responsible) : Json(nullptr);
  if (op == dht::RouteOp::Fetch && r.status == dht::Status::Ok && !r.records.empty()) {
    const auto& rec = r.records[0];
    put_bytes(j, "value", rec.value);
    j["owner"] = rec.owner;
    j["stored_at_us"] = rec.stored_at_us;
    j["lifetime_s"] = rec.lifetime_s;
  }
  if (r.status != dht::Status::Ok) j["error"] = r.reason;
  http = r.status == dht::Status::Ok          ? 200
         : r.status == dht::Status::NotFound  ? 404
         : r.status == dht::Status::Forbidden ? 403
                                              : 503;
  return j;
}

Json location_json(const std::string& aor, const peer::Location& where, int& http) {
  Json j;
  j["aor"] = aor;
  j["status"] = where.status;
  j["hops"] = where.hops;
  j["latency_ms"] = static_cast<double>(where.latency.count()) / 1000.0;
  Json entries = Json::array();
  for (const auto& e : where.entries) {
    entries.push_back(Json{{"node", e.entry.node.id.hex()},
                           {"addr", e.entry.node.addr.host_port()},
                           {"transport", std::string(transport_name(e.entry.node.addr.transport))},
                           {"devices", e.entry.devices},
                           {"via", e.entry.via},
                           {"lifetime_s", e.lifetime_s}});
  }
  j["entries"] = entries;
  if (where.status != 200 && where.status != 404) j["error"] = where.reason;
  http = !where.entries.empty() ? 200 : (where.status == 200 || where.status == 404) ? 404 : 503;
  return j;
}

}  // namespace p2psip::tools
