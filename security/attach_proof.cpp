#include "security/attach_proof.hpp"

#include <algorithm>
#include <charconv>

#include "security/sealed.hpp"

namespace p2psip::security {

namespace {

constexpr std::string_view kPrefix = "a=p2psip-proof:ed25519 ";

std::string signed_bytes(AttachRole role, const dht::NodeId& from, const dht::NodeId& to, std::int64_t t_us,
                         std::string_view description, std::string_view offer_proof) {
  std::string out(role == AttachRole::Offer ? "p2psip-attach/1\r\n" : "p2psip-attach-answer/1\r\n");
  out += from.hex() + "\r\n" + to.hex() + "\r\n" + std::to_string(t_us) + "\r\n";
  if (role == AttachRole::Answer) out.append(offer_proof).append("\r\n");
  out.append(description);
  return out;
}

/// Where the proof line starts in `proven` (npos when the last line is not one).
std::size_t proof_start(std::string_view proven) {
  std::string_view body = proven;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  const std::size_t nl = body.rfind('\n');
  const std::size_t start = nl == std::string_view::npos ? 0 : nl + 1;
  return body.substr(start).starts_with(kPrefix) ? start : std::string_view::npos;
}

}  // namespace

std::string prove_attach(const CryptoProvider& crypto, const KeyPair& key, AttachRole role, const dht::NodeId& from,
                         const dht::NodeId& to, std::int64_t t_us, std::string_view description,
                         std::string_view offer_proof) {
  std::string body(description);
  if (!body.empty() && body.back() != '\n') body += "\r\n";
  const Signature sig = crypto.sign(key, signed_bytes(role, from, to, t_us, body, offer_proof));
  body.append(kPrefix);
  body += to_base64(std::string_view(reinterpret_cast<const char*>(key.public_key.data()), key.public_key.size()));
  body += " " + std::to_string(t_us) + " ";
  body += to_base64(std::string_view(reinterpret_cast<const char*>(sig.data()), sig.size()), Base64::UrlNoPadding);
  body += "\r\n";
  return body;
}

std::string_view attach_proof_line(std::string_view proven) {
  const std::size_t start = proof_start(proven);
  if (start == std::string_view::npos) return {};
  std::string_view line = proven.substr(start);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

std::optional<std::string> check_attach(const CryptoProvider& crypto, AttachRole role, const dht::NodeId& from,
                                        const dht::NodeId& to, std::int64_t now_us, std::int64_t freshness_us,
                                        std::string_view proven, std::string_view offer_proof) {
  const std::size_t start = proof_start(proven);
  if (start == std::string_view::npos) return std::string("Not Signed By Its Sender");
  std::string_view fields = attach_proof_line(proven).substr(kPrefix.size());
  const std::size_t sp1 = fields.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : fields.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::string("Malformed Proof");
  const auto key = from_base64(fields.substr(0, sp1), 32);
  const std::string_view t_text = fields.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto sig = from_base64(fields.substr(sp2 + 1), 64, Base64::UrlNoPadding);
  std::int64_t t_us = 0;
  const auto [end, ec] = std::from_chars(t_text.data(), t_text.data() + t_text.size(), t_us);
  if (!key || key->size() != 32 || !sig || sig->size() != 64 || ec != std::errc() ||
      end != t_text.data() + t_text.size()) {
    return std::string("Malformed Proof");
  }
  PublicKey pk{};
  std::copy(key->begin(), key->end(), reinterpret_cast<char*>(pk.data()));
  // The Node-ID is the key's digest: a key of anyone else's cannot claim it.
  if (node_id_of(pk) != from) return std::string("Signed By Another Node Than " + from.short_hex());
  if (t_us > now_us + freshness_us || t_us < now_us - freshness_us) return std::string("Stale Proof");
  Signature s{};
  std::copy(sig->begin(), sig->end(), reinterpret_cast<char*>(s.data()));
  if (!crypto.verify(pk, signed_bytes(role, from, to, t_us, proven.substr(0, start), offer_proof), s)) {
    return std::string("Signature Does Not Verify");
  }
  return std::nullopt;
}

}  // namespace p2psip::security
