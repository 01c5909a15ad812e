// Keys and signatures behind a small provider interface (../shared/DESIGN.md, "Determinism and
// scale"): Ed25519 from libsodium for real nodes, and a fast fake that large simulations may select
// (and must report that they did). Nothing here reads a clock or draws randomness: a key pair is
// made from a 32-byte seed that the caller supplies from its environment.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dht/node_id.hpp"

namespace p2psip::security {

using PublicKey = std::array<std::uint8_t, 32>;
using Seed = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

/// An Ed25519 key pair, kept as its seed (the private key) and public key.
struct KeyPair {
  Seed seed{};
  PublicKey public_key{};
  /// The key pair of `seed` (RFC 8032 §5.1.5: the public key is derived from the seed).
  static KeyPair from_seed(const Seed& seed);
};

/// A node's place on the ring follows from its key, never from its choice: the SHA-256 digest of
/// the raw public key truncated to 128 bits (RFC 6940 §13.3 for self-signed peers; this overlay
/// uses the same rule with a CA as well, and the CA writes the result into the certificate).
dht::NodeId node_id_of(const PublicKey& key);

/// Signs and verifies messages and records.
class CryptoProvider {
 public:
  virtual ~CryptoProvider() = default;
  /// The provider's name as reports show it ("ed25519", "fake-fast").
  [[nodiscard]] virtual std::string_view name() const = 0;
  /// Whether signatures made by this provider prove anything (false for the simulator's fake).
  [[nodiscard]] virtual bool secure() const = 0;
  [[nodiscard]] virtual Signature sign(const KeyPair& key, std::string_view data) const = 0;
  [[nodiscard]] virtual bool verify(const PublicKey& key, std::string_view data, const Signature& sig) const = 0;
};

/// Ed25519 (libsodium's crypto_sign_detached / crypto_sign_verify_detached).
class Ed25519Provider final : public CryptoProvider {
 public:
  Ed25519Provider();  ///< initialises libsodium (idempotent)
  [[nodiscard]] std::string_view name() const override { return "ed25519"; }
  [[nodiscard]] bool secure() const override { return true; }
  [[nodiscard]] Signature sign(const KeyPair& key, std::string_view data) const override;
  [[nodiscard]] bool verify(const PublicKey& key, std::string_view data, const Signature& sig) const override;
};

/// For simulations too large to pay for Ed25519 on every message: the "signature" is a keyed
/// 64-bit hash of (public key, data). It detects data altered after signing and a signature
/// presented under another key, as the real one does, but anyone who knows the public key can
/// forge it. Never for a real node: `secure()` is false and the daemon refuses it.
class FakeFastProvider final : public CryptoProvider {
 public:
  [[nodiscard]] std::string_view name() const override { return "fake-fast (simulation only: forgeable)"; }
  [[nodiscard]] bool secure() const override { return false; }
  [[nodiscard]] Signature sign(const KeyPair& key, std::string_view data) const override;
  [[nodiscard]] bool verify(const PublicKey& key, std::string_view data, const Signature& sig) const override;
};

}  // namespace p2psip::security
