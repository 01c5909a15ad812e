#include "sim/adversary.hpp"

#include "node/overlay/codec.hpp"

namespace p2psip::sim {

void Adversary::decide(Host& host, std::uint32_t index) {
  if (index == 0 || sc_.malicious_fraction <= 0 || rng_.uniform() >= sc_.malicious_fraction) return;
  host.malicious = true;
  host.forges =
      sc_.attack == Scenario::Attack::Forge || (sc_.attack == Scenario::Attack::Mixed && rng_.uniform() < 0.5);
  ++metrics_.results.malicious_nodes;
}

bool Adversary::intercept(std::uint32_t to, const InFlight& f) {
  // Only routed lookups and fetches are attacked: the node keeps up its maintenance (so that it
  // stays in the ring and keeps receiving them) and handles stores honestly.
  std::size_t used = 0;
  const sip::Limits limits;
  auto m = f.transport == Transport::Udp ? sip::parse_datagram(f.bytes, limits)
                                         : sip::parse_message(f.bytes, limits, true, &used);
  if (!m || !m->is_request() || m->method_id() != sip::Method::Register) return false;
  const auto op = m->header("DHT-Op");
  if (!op || (*op != "lookup" && *op != "fetch")) return false;
  auto req = overlay::decode_request(*m, sc_.overlay);
  if (!req) return false;
  Host& h = population_.host(to);
  Results& r = metrics_.results;
  if (!h.forges) {
    ++r.attacks_dropped;
    return true;  // never answered, not even 100 Trying: the asker's hop timeout finds it out
  }
  // The forger claims the key for its own. For a fetch it serves a record of its making under the
  // key's name when it knows the name (the simulation tells it: the strongest forger), signed
  // with its own key; otherwise it says there is none.
  dht::Response resp;
  resp.responder = dht::Peer{h.id, Network::address(to)};
  resp.responsible = resp.responder;
  resp.hops = req->hops;
  const Instant t = engine_.now();
  if (req->route_op == dht::RouteOp::Fetch) {
    const std::string* name = workload_.name_of(req->target);
    if (name == nullptr) {
      resp.status = dht::Status::NotFound;
      resp.reason = "No Record";
    } else {
      dht::Record forged;
      forged.key = req->target;
      forged.name = *name;
      forged.dkey = "forged";
      forged.value = "forged by " + h.id.short_hex();
      forged.owner = h.id.hex();
      forged.lifetime_s = 3600;
      forged.stored_at_us = t.time_since_epoch().count();
      if (const auto* writer = h.peer->writer()) writer->sign(forged, h.env.wall_time(t));
      resp.records.push_back(std::move(forged));
    }
  }
  // The tag from the forger's own stream: the attack's stream decides who is malicious, and nothing else.
  sip::Message out = overlay::encode_response(*m, resp, sc_.overlay, "f" + std::to_string(h.env.secure_random()));
  if (auto* auth = h.peer->overlay().authenticator(); auth != nullptr && f.transport != Transport::Tls) {
    auth->sign_response(out, *m, t);
  }
  ++r.attacks_forged;
  if (f.link != 0) {
    ice_.send(to, f.link, out.serialize());
    return true;
  }
  Endpoint back = f.from;
  back.transport = f.transport;
  population_.transmit(to, Network::kOverlayPort, back, out.serialize(), nullptr);
  return true;
}

}  // namespace p2psip::sim
