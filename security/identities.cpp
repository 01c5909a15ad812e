#include "security/identities.hpp"

#include <cstring>

namespace p2psip::security {

Result<Identity, std::string> Identity::from_pem(std::string_view key_pem, std::string_view cert_pem) {
  auto key = parse_private_key(key_pem);
  if (!key) return unexpected("key: " + key.error());
  auto cert = Certificate::from_pem(cert_pem);
  if (!cert) return unexpected("certificate: " + cert.error());
  if (cert->info().public_key != key->public_key) {
    return unexpected(std::string("the key and the certificate do not belong together (different public keys)"));
  }
  return Identity{*key, *cert};
}

bool EnrolledUsers::add(const Identity& id) {
  if (id.cert.info().kind != CertKind::User) return false;
  writers_.insert_or_assign(id.cert.info().aor, Writer{id.key, id.cert.der(), &crypto_});
  if (vouch_to_ != nullptr) vouch_to_->vouch(id.cert);
  return true;
}

const Writer* EnrolledUsers::writer_for(std::string_view aor, Instant) {
  auto it = writers_.find(aor);
  return it == writers_.end() ? nullptr : &it->second;
}

KeyPair key_from(Environment& env) {
  Seed seed{};
  env.secure_bytes(seed.data(), seed.size());
  return KeyPair::from_seed(seed);
}

DevelopmentUsers::DevelopmentUsers(std::string overlay, const CryptoProvider& crypto, Environment& env,
                                   std::size_t max_users, RecordPolicy* vouch_to)
    : overlay_(std::move(overlay)), crypto_(crypto), env_(env), max_users_(max_users), vouch_to_(vouch_to) {}

const Writer* DevelopmentUsers::writer_for(std::string_view aor, Instant now) {
  if (auto it = writers_.find(aor); it != writers_.end()) return &it->second;
  // Only this overlay's users, with names a certificate can carry.
  const std::string suffix = "@" + overlay_;
  if (aor.substr(0, 4) != "sip:" || aor.size() <= 4 + suffix.size() ||
      aor.substr(aor.size() - suffix.size()) != suffix ||
      !valid_user_name(aor.substr(4, aor.size() - 4 - suffix.size())) || writers_.size() >= max_users_) {
    return nullptr;
  }
  KeyPair key = key_from(env_);
  const std::int64_t t = unix_seconds(env_.wall_time(now));
  auto cert = issue_raw(key, nullptr, key.public_key, std::string(aor) + " (self-signed, development)",
                        {std::string(aor)}, false, env_.secure_random() >> 1 | 1, {t - 300, t + 10 * 365 * 86400});
  if (!cert) return nullptr;
  if (vouch_to_ != nullptr) vouch_to_->vouch(*cert);
  return &writers_.emplace(std::string(aor), Writer{key, cert->der(), &crypto_}).first->second;
}

}  // namespace p2psip::security
