// Certificates checked once and remembered: a node sees the same few certificates again and again
// (its neighbours' on every message, its users' at every refresh), and parsing and chain-checking
// one costs about 300 µs with OpenSSL 3, against 1 µs to look it up. Entries are kept by the
// SHA-256 of the DER and hold what a check needs (key, kind, names, validity period, verdict), about
// 200 bytes each; node certificates that checked out can also be found by their Node-ID, for
// messages that name their sender without carrying its certificate. Sans-I/O: the caller passes
// the time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dht/node_id.hpp"
#include "security/certificate.hpp"

namespace p2psip::security {

class CertificateCache {
 public:
  struct Entry {
    bool readable = false;
    CertInfo info;      ///< what the certificate says (when readable)
    Verdict verdict;    ///< the chain and Node-ID check at the time it was made
    std::string error;  ///< why it could not be read
  };

  /// Remembers at most `capacity` certificates (one arbitrary entry is forgotten beyond that).
  explicit CertificateCache(TrustAnchor trust, std::size_t capacity = 65536);

  /// The check of `der` at Unix time `now_s`: remembered, or made now (parse, chain, Node-ID rule)
  /// and remembered. Refusals for time (expired, not yet valid) are checked again each time. The
  /// reference is good until the next call that adds an entry.
  const Entry& check(std::string_view der, std::int64_t now_s);
  /// The node certificate with this Node-ID that checked out when it was added, or null.
  [[nodiscard]] const Entry* node(const dht::NodeId& id) const;
  /// `e`'s verdict at `now_s`: the one stored, unless the certificate (or the root) has expired or
  /// is not yet valid now.
  [[nodiscard]] Verdict at(const Entry& e, std::int64_t now_s) const;
  /// Remembers `cert` as checked and good without checking it: for the identities this node made
  /// or checked itself.
  void vouch(const Certificate& cert);

  [[nodiscard]] const TrustAnchor& trust() const { return trust_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  /// Certificates parsed and checked so far (cache misses).
  [[nodiscard]] std::uint64_t checks() const { return checks_; }

 private:
  using Digest = std::array<std::uint8_t, 32>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept {
      std::size_t h = 0;
      std::memcpy(&h, d.data(), sizeof h);
      return h;
    }
  };
  static Digest digest(std::string_view der);
  Entry& remember(const Digest& d, Entry e);

  TrustAnchor trust_;
  std::size_t capacity_;
  std::uint64_t checks_ = 0;
  std::unordered_map<Digest, Entry, DigestHash> entries_;
  std::unordered_map<dht::NodeId, Digest, dht::NodeIdHash> by_node_;  ///< good node certificates
};

}  // namespace p2psip::security
