// End-to-end proof of an Attach's two descriptions (docs/PROTOCOL.md, "Attach"). Every hop signs
// what it forwards (node/overlay/peer_auth.hpp), but an Attach crosses several peers, and a peer on
// its path could put its own ICE candidates under another node's DHT-Origin and take the link that
// node asked for. So the node that sends an Attach signs its description for the peer it is meant
// for, and that peer signs its answer for the sender and that very offer:
//
//   a=p2psip-proof:ed25519 <public key, base64> <writer's Unix time, µs> <signature, base64url>
//
// as the description's last line. The signature covers "p2psip-attach/1" (or "p2psip-attach-
// answer/1"), the sender's and the receiver's Node-IDs, the time, for an answer the offer's own
// proof line, and the description before the line, each followed by CRLF. The key proves the
// Node-ID by itself: a node's Node-ID is the digest of its key (security/crypto.hpp), so the
// receiver needs no certificate, only that digest, the signature, and a time within its freshness.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dht/node_id.hpp"
#include "security/crypto.hpp"

namespace p2psip::security {

/// Which of the two descriptions a proof is for.
enum class AttachRole : std::uint8_t { Offer, Answer };

/// `description` with its proof line appended. `offer_proof`: an answer's offer's proof line
/// (attach_proof_line of the offer), empty for an offer.
[[nodiscard]] std::string prove_attach(const CryptoProvider& crypto, const KeyPair& key, AttachRole role,
                                       const dht::NodeId& from, const dht::NodeId& to, std::int64_t t_us,
                                       std::string_view description, std::string_view offer_proof = {});

/// The proof line of a proven description (without its line ending), or empty when it has none.
[[nodiscard]] std::string_view attach_proof_line(std::string_view proven);

/// Checks that `proven` was signed by the node `from` for `to` (and, for an answer, for the offer
/// whose proof line is `offer_proof`) at a time within `freshness_us` of `now_us`: nullopt when it
/// was, otherwise why not, as a phrase for a 403.
[[nodiscard]] std::optional<std::string> check_attach(const CryptoProvider& crypto, AttachRole role,
                                                      const dht::NodeId& from, const dht::NodeId& to,
                                                      std::int64_t now_us, std::int64_t freshness_us,
                                                      std::string_view proven, std::string_view offer_proof = {});

}  // namespace p2psip::security
