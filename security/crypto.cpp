#include "security/crypto.hpp"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace p2psip::security {

KeyPair KeyPair::from_seed(const Seed& seed) {
  KeyPair k;
  k.seed = seed;
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(k.public_key.data(), sk, seed.data());
  sodium_memzero(sk, sizeof sk);
  return k;
}

dht::NodeId node_id_of(const PublicKey& key) {
  return dht::NodeId::hash(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

Ed25519Provider::Ed25519Provider() {
  // CPU feature selection; 1 when already done. It fails only where the platform cannot supply
  // what libsodium needs, and then no signature can be trusted either way.
  if (sodium_init() < 0) std::abort();
}

Signature Ed25519Provider::sign(const KeyPair& key, std::string_view data) const {
  // libsodium's secret key is the seed followed by the public key.
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  std::memcpy(sk, key.seed.data(), 32);
  std::memcpy(sk + 32, key.public_key.data(), 32);
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(data.data()), data.size(), sk);
  sodium_memzero(sk, sizeof sk);
  return sig;
}

bool Ed25519Provider::verify(const PublicKey& key, std::string_view data, const Signature& sig) const {
  return crypto_sign_verify_detached(sig.data(), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                                     key.data()) == 0;
}

namespace {
/// FNV-1a over the key, then the data: fast, and changes with every byte of either.
Signature fake_signature(const PublicKey& key, std::string_view data) {
  std::uint64_t h = 14695981039346656037ull;
  for (std::uint8_t b : key) h = (h ^ b) * 1099511628211ull;
  for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  Signature sig{};
  for (int i = 0; i < 8; ++i) sig[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(h >> (8 * i));
  return sig;
}
}  // namespace

Signature FakeFastProvider::sign(const KeyPair& key, std::string_view data) const {
  return fake_signature(key.public_key, data);
}

bool FakeFastProvider::verify(const PublicKey& key, std::string_view data, const Signature& sig) const {
  return fake_signature(key, data) == sig;
}

}  // namespace p2psip::security
