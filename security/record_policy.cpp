#include "security/record_policy.hpp"

#include <msgpack.h>

#include <algorithm>
#include <optional>

#include "core/hex.hpp"

namespace p2psip::security {

namespace {

void pack_str(msgpack_packer* pk, std::string_view s) {
  msgpack_pack_str(pk, s.size());
  msgpack_pack_str_body(pk, s.data(), s.size());
}

dht::Refusal forbid(std::string reason) {
  return dht::Refusal{dht::Status::Forbidden, "Forbidden (" + std::move(reason) + ")"};
}

bool is_node_id_name(std::string_view name) {
  return name.size() == 32 && dht::NodeId::from_hex(name).has_value();
}

/// "turn-service:HEX:D": a TURN-SERVICE entry (RFC 6940 §9) of the node HEX, its D'th.
bool is_turn_service_name(std::string_view name) {
  return name.substr(0, dht::kTurnServiceKind.size() + 1) == std::string(dht::kTurnServiceKind) + ":";
}

}  // namespace

std::optional<TurnServiceName> parse_turn_service_name(std::string_view name) {
  if (!is_turn_service_name(name)) return std::nullopt;
  name.remove_prefix(dht::kTurnServiceKind.size() + 1);
  if (name.size() < 34 || name[32] != ':') return std::nullopt;
  auto node = dht::NodeId::from_hex(name.substr(0, 32));
  const std::string_view d = name.substr(33);
  if (!node || d.empty() || d.size() > 2 ||
      !std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int i = std::stoi(std::string(d));
  if (i < 1 || i > kMaxTurnServiceIteration || d[0] == '0') return std::nullopt;
  return TurnServiceName{*node, i};
}

std::string turn_service_name(const dht::NodeId& node, int iteration) {
  return std::string(dht::kTurnServiceKind) + ":" + node.hex() + ":" + std::to_string(iteration);
}

std::string record_signing_bytes(const dht::Record& r) {
  msgpack_sbuffer sbuf;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 8);
  pack_str(&pk, "p2psip-record/1");
  unsigned char key[16];
  for (int i = 0; i < 8; ++i) {
    key[i] = static_cast<unsigned char>(r.key.hi >> (56 - 8 * i));
    key[8 + i] = static_cast<unsigned char>(r.key.lo >> (56 - 8 * i));
  }
  msgpack_pack_bin(&pk, 16);
  msgpack_pack_bin_body(&pk, key, 16);
  pack_str(&pk, r.name);
  pack_str(&pk, r.dkey);
  msgpack_pack_bin(&pk, r.value.size());
  msgpack_pack_bin_body(&pk, r.value.data(), r.value.size());
  pack_str(&pk, r.owner);
  msgpack_pack_int64(&pk, r.written_at_us);
  msgpack_pack_uint32(&pk, r.lifetime_s);
  std::string out(sbuf.data, sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  return out;
}

void Writer::sign(dht::Record& r, WallTime written_at) const {
  r.written_at_us = unix_us(written_at);
  r.signer = cert_der;
  const Signature sig = crypto->sign(key, record_signing_bytes(r));
  r.signature.assign(reinterpret_cast<const char*>(sig.data()), sig.size());
}

RecordPolicy::RecordPolicy(TrustAnchor trust, const CryptoProvider& crypto, Environment& env, RecordPolicyConfig config)
    : RecordPolicy(std::make_shared<CertificateCache>(std::move(trust), config.certificate_cache), crypto, env,
                   config) {}

RecordPolicy::RecordPolicy(std::shared_ptr<CertificateCache> certificates, const CryptoProvider& crypto,
                           Environment& env, RecordPolicyConfig config)
    : certs_(std::move(certificates)), crypto_(crypto), env_(env), cfg_(config) {}

std::string_view RecordPolicy::rule_for(std::string_view name) {
  if (name.substr(0, 4) == "sip:") return "USER-MATCH";
  if (is_node_id_name(name)) return "NODE-MATCH";
  if (is_turn_service_name(name)) return "NODE-MULTIPLE";
  return "FIRST-WRITER";
}

RecordPolicyStats RecordPolicy::stats() const {
  RecordPolicyStats s = stats_;
  s.certificates_checked = certs_->checks();
  return s;
}

dht::Refusal RecordPolicy::check(const dht::Record& r, std::int64_t now_s, bool own) {
  if (r.signature.empty() || r.signer.empty()) return forbid("Unsigned Record");
  if (r.signature.size() != std::tuple_size_v<Signature>) return forbid("Malformed Signature");
  const CertificateCache::Entry& c = certs_->check(r.signer, now_s);
  if (!c.readable) return forbid("Unreadable Signer Certificate: " + c.error);
  const CertInfo& info = c.info;
  // A certificate that checked out once is re-read only for time.
  const Verdict v = certs_->at(c, now_s);
  if (!v.ok()) return forbid("Signer Certificate: " + std::string(to_string(v.error)));
  // The write rule, by name.
  const std::string_view rule = rule_for(r.name);
  if (rule == "USER-MATCH") {
    if (info.kind != CertKind::User || info.aor != r.name) return forbid("USER-MATCH: Signer Is Not " + r.name);
  } else if (rule == "NODE-MATCH") {
    if (info.kind != CertKind::Node || !info.node_id || info.node_id->hex() != r.name) {
      return forbid("NODE-MATCH: Signer Is Not Node " + r.name);
    }
  } else if (rule == "NODE-MULTIPLE") {
    // RFC 6940 §7.3.4 and §9: a node writes its own entries only, the i'th of at most 20.
    const auto entry = parse_turn_service_name(r.name);
    if (!entry) return forbid("NODE-MULTIPLE: Malformed Name " + r.name);
    if (info.kind != CertKind::Node || !info.node_id || *info.node_id != entry->node) {
      return forbid("NODE-MULTIPLE: Signer Is Not Node " + entry->node.hex());
    }
  }
  if (r.written_at_us > (now_s + cfg_.max_clock_skew_s) * 1000000) return forbid("Written In The Future");
  if (own) return {};  // signed in this process a moment ago: checking it again proves nothing
  Signature sig{};
  std::copy(r.signature.begin(), r.signature.end(), reinterpret_cast<char*>(sig.data()));
  ++stats_.signatures_checked;
  if (!crypto_.verify(info.public_key, record_signing_bytes(r), sig)) return forbid("Signature Does Not Verify");
  return {};
}

dht::Refusal RecordPolicy::admit(const dht::Record& r, const dht::Record* held, Instant now, bool own) {
  // Replication sends the same record again and again: the one already held, byte for byte, is
  // taken without a second check. Every signed field must be the same, not the signature alone: a
  // held signature copied onto another value is a forgery, and goes through the full check.
  if (held != nullptr && !r.signature.empty() && held->signature == r.signature &&
      held->written_at_us == r.written_at_us && held->value == r.value && held->lifetime_s == r.lifetime_s &&
      held->signer == r.signer && held->owner == r.owner && held->name == r.name && held->dkey == r.dkey &&
      held->key == r.key) {
    ++stats_.admitted;
    return {};
  }
  const std::int64_t now_s = unix_seconds(env_.wall_time(now));
  dht::Refusal no = check(r, now_s, own);
  if (!no && held != nullptr) {
    // Only a newer record replaces (or removes) an entry: an old one replayed is refused.
    if (r.written_at_us <= held->written_at_us) {
      no = forbid("Stale Record: Not Newer Than The One Held");
    } else if (rule_for(r.name) == "FIRST-WRITER" && held->signer != r.signer) {
      // Same key, renewed certificate: still the owner. (Keys copied out: a second lookup may
      // evict the first from the cache.)
      auto key_of = [&](const std::string& der) -> std::optional<PublicKey> {
        const CertificateCache::Entry& c = certs_->check(der, now_s);
        return c.readable ? std::optional(c.info.public_key) : std::nullopt;
      };
      const auto mine = key_of(held->signer);
      const auto theirs = key_of(r.signer);
      if (!mine || !theirs || *mine != *theirs) no = forbid("Entry Belongs To Another Writer");
    }
  }
  (no ? stats_.refused : stats_.admitted)++;
  if (no) env_.log(LogLevel::Info, "security: record " + r.name + " refused: " + no.reason);
  return no;
}

bool RecordPolicy::believe(const dht::Record& r, Instant now) {
  dht::Refusal no = check(r, unix_seconds(env_.wall_time(now)));
  (no ? stats_.disbelieved : stats_.believed)++;
  if (no) env_.log(LogLevel::Warn, "security: a fetched record " + r.name + " is not believed: " + no.reason);
  return !no;
}

}  // namespace p2psip::security
