#include "node/overlay/peer_auth.hpp"

#include <algorithm>
#include <charconv>

#include "node/sip/headers.hpp"
#include "security/sealed.hpp"

namespace p2psip::overlay {
namespace {

AuthVerdict refuse(int status, std::string reason) {
  return AuthVerdict{status, std::move(reason)};
}

/// The parts of a DHT-Signature value.
struct SignatureField {
  std::string_view time;
  security::Signature sig{};
  bool want = false;
};

std::optional<SignatureField> parse_signature(std::string_view value) {
  const std::size_t semi = value.find(';');
  if (semi == std::string_view::npos || !sip::iequals(value.substr(0, semi), "ed25519")) return std::nullopt;
  sip::HeaderParams params{value.substr(semi)};
  SignatureField f;
  auto t = params.get("t");
  auto sig = params.get("sig");
  if (!t || !sig || t->empty() || t->size() > 19 ||
      !std::all_of(t->begin(), t->end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  auto raw = security::from_base64(*sig, 64, security::Base64::UrlNoPadding);
  if (!raw || raw->size() != f.sig.size()) return std::nullopt;
  std::copy(raw->begin(), raw->end(), reinterpret_cast<char*>(f.sig.data()));
  f.time = *t;
  f.want = params.has("want");
  return f;
}

}  // namespace

std::string message_signing_bytes(const sip::Message& m, std::string_view time) {
  std::string out = "p2psip-msg/1\r\n";
  out.append(time).append("\r\n");
  // The receiver's transaction layer writes received and rport into the top Via (RFC 3261
  // §18.2.1, RFC 3581 §4) before the node sees the request, so the signature covers the top Via
  // without them. Its branch stays covered: a replay within the freshness window is then a
  // retransmission, which the server transaction absorbs.
  const auto via = sip::top_via(m);
  if (!via || (!via->has_received && !via->rport)) {
    m.serialize_without(out, {kSignatureHeader, kCertificateHeader});
    return out;
  }
  const std::string_view value = *m.header(sip::HeaderId::Via);
  const auto params_at = static_cast<std::size_t>(via->params.raw.data() - value.data());
  const std::string no_received = via->params.without("received");
  std::string canonical(value.substr(0, params_at));
  canonical += sip::HeaderParams{no_received}.without("rport");
  canonical += value.substr(params_at + via->params.raw.size());
  sip::Message copy = m;
  copy.set_header(sip::HeaderId::Via, canonical);
  copy.serialize_without(out, {kSignatureHeader, kCertificateHeader});
  return out;
}

PeerAuthenticator::PeerAuthenticator(security::KeyPair key, const security::Certificate& cert,
                                     std::shared_ptr<security::CertificateCache> certificates,
                                     const security::CryptoProvider& crypto, Environment& env, PeerAuthConfig config)
    : key_(key),
      cert_b64_(security::to_base64(cert.der())),
      id_(cert.info().node_id.value_or(security::node_id_of(key.public_key))),
      certs_(std::move(certificates)),
      crypto_(crypto),
      env_(env),
      cfg_(config) {
  certs_->vouch(cert);
}

void PeerAuthenticator::sign(sip::Message& m, Instant now, bool carry, bool want) {
  char tbuf[24];
  const std::string_view time(
      tbuf, static_cast<std::size_t>(std::to_chars(tbuf, tbuf + sizeof tbuf, unix_us(env_.wall_time(now))).ptr - tbuf));
  const security::Signature sig = crypto_.sign(key_, message_signing_bytes(m, time));
  std::string value = "ed25519;t=";
  value.append(time).append(";sig=");
  value += security::to_base64(std::string_view(reinterpret_cast<const char*>(sig.data()), sig.size()),
                               security::Base64::UrlNoPadding);
  if (want) value += ";want";
  m.add_header(kSignatureHeader, value);
  if (carry) {
    m.add_header(kCertificateHeader, cert_b64_);
    ++stats_.certificates_sent;
  }
  ++stats_.signed_messages;
}

bool PeerAuthenticator::sign_request(sip::Message& m, const dht::NodeId* to, Instant now) {
  const bool carry = to == nullptr || told_.count(*to) == 0;
  const bool want = to == nullptr || certs_->node(*to) == nullptr;
  sign(m, now, carry, want);
  return carry;
}

void PeerAuthenticator::sign_response(sip::Message& m, const sip::Message& request, Instant now) {
  bool want = false;
  if (auto field = request.header(kSignatureHeader)) {
    auto f = parse_signature(*field);
    want = f && f->want;
  }
  sign(m, now, want, false);
}

void PeerAuthenticator::told(const dht::NodeId& peer) {
  if (told_.size() >= cfg_.told_capacity && told_.count(peer) == 0) told_.clear();
  told_.insert(peer);
}

AuthVerdict PeerAuthenticator::check(const sip::Message& m, const dht::NodeId* signer, Instant now,
                                     dht::NodeId* signed_by) {
  auto verdict = [&]() -> AuthVerdict {
    auto field = m.extension_header(kSignatureHeader);
    if (!field) return refuse(428, "Use Identity Header (Overlay Messages Must Carry DHT-Signature)");
    auto f = parse_signature(*field);
    if (!f) return refuse(438, "Invalid Identity Header (Malformed DHT-Signature)");
    const std::int64_t now_us = unix_us(env_.wall_time(now));
    std::int64_t t = 0;
    std::from_chars(f->time.data(), f->time.data() + f->time.size(), t);
    const std::int64_t skew = cfg_.freshness.count();
    if (t < now_us - skew || t > now_us + skew) {
      return refuse(403, "Stale Date (Signed " + std::to_string((t - now_us) / 1000000) + " s From Our Clock)");
    }
    const std::int64_t now_s = now_us / 1000000;
    const security::CertificateCache::Entry* entry = nullptr;
    if (auto carried = m.extension_header(kCertificateHeader)) {
      auto der = security::from_base64(*carried, 16384);
      if (!der) return refuse(437, "Unsupported Credential (Malformed DHT-Certificate)");
      const std::size_t before = certs_->checks();
      entry = &certs_->check(*der, now_s);
      if (certs_->checks() != before && entry->readable && entry->verdict.ok()) ++stats_.certificates_learned;
      if (!entry->readable) return refuse(437, "Unsupported Credential (Unreadable Certificate: " + entry->error + ")");
    } else if (signer == nullptr || (entry = certs_->node(*signer)) == nullptr) {
      return refuse(436, "Bad Identity Info (Certificate Of " + (signer ? signer->short_hex() : "The Sender") +
                             " Not Held Here: Send DHT-Certificate)");
    }
    const security::Verdict v = certs_->at(*entry, now_s);
    if (!v.ok()) {
      return refuse(437, "Unsupported Credential (" + std::string(security::to_string(v.error)) + ")");
    }
    if (entry->info.kind != security::CertKind::Node || !entry->info.node_id) {
      return refuse(437, "Unsupported Credential (Not A Node Certificate)");
    }
    if (signer != nullptr && *entry->info.node_id != *signer) {
      return refuse(403, "Forbidden (Node-ID " + signer->short_hex() + " Claimed, Certificate Is " +
                             entry->info.node_id->short_hex() + "'s)");
    }
    if (!crypto_.verify(entry->info.public_key, message_signing_bytes(m, f->time), f->sig)) {
      return refuse(438, "Invalid Identity Header (Signature Does Not Verify)");
    }
    if (signed_by != nullptr) *signed_by = *entry->info.node_id;
    return {};
  }();
  (verdict.ok() ? stats_.verified : stats_.refused)++;
  return verdict;
}

Result<dht::NodeId, AuthVerdict> PeerAuthenticator::check_link(std::string_view cert_der, Instant now) {
  const std::int64_t now_s = unix_seconds(env_.wall_time(now));
  const security::CertificateCache::Entry& e = certs_->check(cert_der, now_s);
  AuthVerdict v;
  if (!e.readable) {
    v = refuse(437, "Unsupported Credential (Unreadable Certificate: " + e.error + ")");
  } else if (const security::Verdict t = certs_->at(e, now_s); !t.ok()) {
    v = refuse(437, "Unsupported Credential (" + std::string(security::to_string(t.error)) + ")");
  } else if (e.info.kind != security::CertKind::Node || !e.info.node_id) {
    v = refuse(437, "Unsupported Credential (Not A Node Certificate)");
  }
  if (!v.ok()) {
    ++stats_.links_refused;
    return unexpected(std::move(v));
  }
  ++stats_.links_accepted;
  return *e.info.node_id;
}

void PeerAuthenticator::log_refusal(const dht::NodeId& peer, const Endpoint& from, const AuthVerdict& v, Instant now) {
  if (!logged_(from, now)) return;
  const std::string who = peer == dht::NodeId{}
                              ? "the TLS peer at " + from.to_string()
                              : "a message from " + from.to_string() + " claiming to be " + peer.short_hex();
  env_.log(LogLevel::Warn, "security: refused " + who + ": " + std::to_string(v.status) + " " + v.reason +
                               " (logged once per address per minute)");
}

}  // namespace p2psip::overlay
