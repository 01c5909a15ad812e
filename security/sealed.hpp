// Secrets for one peer's eyes, and the TURN credentials a node hands out (RFC 6940 §9 leaves both
// open; docs/NAT.md, "TURN servers the overlay announces").
//
// A sealed box is libsodium's construction (X25519, XSalsa20-Poly1305, the nonce a BLAKE2b digest
// of both public keys), with one difference: the sender's one-time key pair comes from a seed the
// caller draws from its environment, since nothing in the core draws randomness itself.
//
// TURN credentials follow coturn's "TURN REST API" (its --use-auth-secret): the user name is
// "EXPIRY:LABEL", EXPIRY the Unix time they stop working, and the password the base64 of
// HMAC-SHA1(shared secret, user name). The TURN server checks them with the same secret, and
// nobody else can make them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "security/crypto.hpp"

namespace p2psip::security {

/// base64: RFC 4648 §4 (padded), or §5's URL-safe alphabet without padding.
enum class Base64 : std::uint8_t { Standard, UrlNoPadding };
/// `bytes` in base64, and its reading: nullopt for anything that is not base64 of that variant, or
/// that holds more than `max_bytes`.
std::string to_base64(std::string_view bytes, Base64 variant = Base64::Standard);
std::optional<std::string> from_base64(std::string_view text, std::size_t max_bytes, Base64 variant = Base64::Standard);

/// An X25519 key pair for sealed boxes, made from a seed.
struct BoxKeyPair {
  PublicKey public_key{};
  std::array<std::uint8_t, 32> secret_key{};
  static BoxKeyPair from_seed(const Seed& seed);
};

/// `message` sealed for the holder of `recipient`'s secret key: the one-time public key (32 bytes)
/// and the box (the message and a 16-byte tag). `one_time` seeds the sender's key pair; a seed used
/// twice reveals the XOR of two messages, so it must be fresh each time.
std::string seal(const PublicKey& recipient, std::string_view message, const Seed& one_time);
/// The message sealed for `mine`, or nullopt when the box was made for another key or altered.
std::optional<std::string> open_sealed(const BoxKeyPair& mine, std::string_view sealed);

/// coturn's REST API password for `username`: base64(HMAC-SHA1(secret, username)).
std::string turn_rest_password(std::string_view secret, std::string_view username);

}  // namespace p2psip::security
