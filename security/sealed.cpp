#include "security/sealed.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <cstdlib>

namespace p2psip::security {

namespace {
int sodium_variant(Base64 v) {
  return v == Base64::UrlNoPadding ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
}

void init_sodium() {
  if (sodium_init() < 0) std::abort();  // idempotent; fails only where no key could be trusted
}

/// The nonce of a sealed box: BLAKE2b-192 of the one-time public key and the recipient's.
std::array<std::uint8_t, crypto_box_NONCEBYTES> seal_nonce(const PublicKey& one_time, const PublicKey& recipient) {
  std::array<std::uint8_t, crypto_box_NONCEBYTES> nonce{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, nonce.size());
  crypto_generichash_update(&st, one_time.data(), one_time.size());
  crypto_generichash_update(&st, recipient.data(), recipient.size());
  crypto_generichash_final(&st, nonce.data(), nonce.size());
  return nonce;
}
}  // namespace

std::string to_base64(std::string_view bytes, Base64 variant) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_variant(variant)), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_variant(variant));
  out.resize(out.size() - 1);  // the terminating NUL sodium writes
  return out;
}

std::optional<std::string> from_base64(std::string_view text, std::size_t max_bytes, Base64 variant) {
  // Four characters carry three bytes: a text longer than `max_bytes` needs is refused unread.
  if (text.size() > (max_bytes / 3 + 1) * 4) return std::nullopt;
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &len, &end, sodium_variant(variant)) != 0 ||
      end != text.data() + text.size() || len > max_bytes) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

BoxKeyPair BoxKeyPair::from_seed(const Seed& seed) {
  init_sodium();
  BoxKeyPair k;
  crypto_box_seed_keypair(k.public_key.data(), k.secret_key.data(), seed.data());
  return k;
}

std::string seal(const PublicKey& recipient, std::string_view message, const Seed& one_time) {
  BoxKeyPair eph = BoxKeyPair::from_seed(one_time);
  const auto nonce = seal_nonce(eph.public_key, recipient);
  std::string out(eph.public_key.size() + crypto_box_MACBYTES + message.size(), '\0');
  std::copy(eph.public_key.begin(), eph.public_key.end(), out.begin());
  auto* box = reinterpret_cast<unsigned char*>(out.data()) + eph.public_key.size();
  if (crypto_box_easy(box, reinterpret_cast<const unsigned char*>(message.data()), message.size(), nonce.data(),
                      recipient.data(), eph.secret_key.data()) != 0) {
    out.clear();  // a recipient key that is a low-order point: nothing can be sealed for it
  }
  sodium_memzero(eph.secret_key.data(), eph.secret_key.size());
  return out;
}

std::optional<std::string> open_sealed(const BoxKeyPair& mine, std::string_view sealed) {
  init_sodium();
  PublicKey one_time{};
  if (sealed.size() < one_time.size() + crypto_box_MACBYTES) return std::nullopt;
  std::copy(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(one_time.size()), one_time.begin());
  const auto nonce = seal_nonce(one_time, mine.public_key);
  const std::string_view box = sealed.substr(one_time.size());
  std::string out(box.size() - crypto_box_MACBYTES, '\0');
  if (crypto_box_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(box.data()), box.size(), nonce.data(),
                           one_time.data(), mine.secret_key.data()) != 0) {
    return std::nullopt;
  }
  return out;
}

std::string turn_rest_password(std::string_view secret, std::string_view username) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(username.data()), username.size(), mac, &len);
  return to_base64(std::string_view(reinterpret_cast<const char*>(mac), len));
}

}  // namespace p2psip::security
