#include "security/certificate_cache.hpp"

#include <sodium.h>

namespace p2psip::security {

CertificateCache::CertificateCache(TrustAnchor trust, std::size_t capacity)
    : trust_(std::move(trust)), capacity_(capacity == 0 ? 1 : capacity) {}

CertificateCache::Digest CertificateCache::digest(std::string_view der) {
  Digest d{};
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(der.data()), der.size());
  return d;
}

CertificateCache::Entry& CertificateCache::remember(const Digest& d, Entry e) {
  if (entries_.size() >= capacity_ && entries_.count(d) == 0) {
    auto victim = entries_.begin();
    if (victim->second.info.node_id) {
      auto idx = by_node_.find(*victim->second.info.node_id);
      if (idx != by_node_.end() && idx->second == victim->first) by_node_.erase(idx);
    }
    entries_.erase(victim);
  }
  if (e.readable && e.verdict.ok() && e.info.kind == CertKind::Node && e.info.node_id) by_node_[*e.info.node_id] = d;
  return entries_.insert_or_assign(d, std::move(e)).first->second;
}

const CertificateCache::Entry& CertificateCache::check(std::string_view der, std::int64_t now_s) {
  const Digest d = digest(der);
  auto it = entries_.find(d);
  const bool time_bound = it != entries_.end() && (it->second.verdict.error == CertError::Expired ||
                                                   it->second.verdict.error == CertError::NotYetValid);
  if (it != entries_.end() && !time_bound) return it->second;
  ++checks_;
  Entry e;
  auto parsed = Certificate::from_der(der);
  if (!parsed) {
    e.error = parsed.error();
  } else {
    e.readable = true;
    e.info = parsed->info();
    const CertKind kind = parsed->info().kind == CertKind::User ? CertKind::User : CertKind::Node;
    e.verdict = trust_.verify(*parsed, kind, now_s);
  }
  return remember(d, std::move(e));
}

const CertificateCache::Entry* CertificateCache::node(const dht::NodeId& id) const {
  auto idx = by_node_.find(id);
  if (idx == by_node_.end()) return nullptr;
  auto it = entries_.find(idx->second);
  return it == entries_.end() ? nullptr : &it->second;
}

Verdict CertificateCache::at(const Entry& e, std::int64_t now_s) const {
  if (!e.verdict.ok()) return e.verdict;
  if (now_s > e.info.not_after) return {CertError::Expired, "expired"};
  if (now_s < e.info.not_before) return {CertError::NotYetValid, "not yet valid"};
  if (trust_.root() && now_s > trust_.root()->info().not_after) return {CertError::Expired, "root expired"};
  return {};
}

void CertificateCache::vouch(const Certificate& cert) {
  Entry e;
  e.readable = true;
  e.info = cert.info();
  remember(digest(cert.der()), std::move(e));
}

}  // namespace p2psip::security
