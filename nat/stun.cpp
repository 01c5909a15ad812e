#include "nat/stun.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

namespace p2psip::nat {
namespace {

constexpr std::uint32_t kFingerprintXor = 0x5354554E;  // RFC 8489 §14.7: "STUN"

std::uint16_t get16(std::string_view b, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(b[at]) << 8 | static_cast<std::uint8_t>(b[at + 1]));
}
std::uint32_t get32(std::string_view b, std::size_t at) {
  return static_cast<std::uint32_t>(get16(b, at)) << 16 | get16(b, at + 2);
}
void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xFFFF));
}
void set16(std::string& out, std::size_t at, std::uint16_t v) {
  out[at] = static_cast<char>(v >> 8);
  out[at + 1] = static_cast<char>(v & 0xFF);
}

// RFC 8489 §5: the method's 12 bits are interleaved with the class's two (C1 at bit 8, C0 at bit 4).
std::uint16_t message_type(StunClass cls, std::uint16_t m) {
  const auto c = static_cast<std::uint16_t>(cls);
  return static_cast<std::uint16_t>((m & 0x000F) | (m & 0x0070) << 1 | (m & 0x0F80) << 2 | (c & 1) << 4 | (c & 2) << 7);
}

struct Crc32Table {
  std::array<std::uint32_t, 256> t{};
  constexpr Crc32Table() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
  }
};
constexpr Crc32Table kCrc;

// The HMAC over the message up to an integrity attribute at `offset`, with the header's length
// changed to end just after that attribute (RFC 8489 §14.5, §14.6).
std::string integrity_input(std::string_view bytes, std::size_t offset, std::size_t value_len) {
  std::string in(bytes.substr(0, offset));
  set16(in, 2, static_cast<std::uint16_t>(offset + 4 + value_len - kStunHeaderSize));
  return in;
}

std::array<unsigned char, EVP_MAX_MD_SIZE> hmac(const EVP_MD* md, std::string_view key, std::string_view data,
                                                unsigned& len) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  len = 0;
  HMAC(md, key.empty() ? "" : key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

bool check_hmac(const StunMessage& m, std::uint16_t type, const EVP_MD* md, std::string_view key, std::size_t min_len,
                std::size_t max_len) {
  const StunAttribute* a = m.find(type);
  if (a == nullptr || a->value.size() < min_len || a->value.size() > max_len || a->value.size() % 4 != 0) return false;
  unsigned len = 0;
  const auto mac = hmac(md, key, integrity_input(m.bytes, a->offset, a->value.size()), len);
  return len >= a->value.size() && CRYPTO_memcmp(mac.data(), a->value.data(), a->value.size()) == 0;
}

}  // namespace

std::string_view describe(StunError e) {
  switch (e) {
    case StunError::NotStun: return "not a STUN message";
    case StunError::BadLength: return "the header's length disagrees with the message";
    case StunError::BadAttribute: return "an attribute is malformed or out of place";
    case StunError::TooManyAttributes: return "too many attributes";
    case StunError::BadFingerprint: return "FINGERPRINT does not match";
  }
  return "?";
}

std::uint32_t crc32(std::string_view bytes) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : bytes) c = kCrc.t[(c ^ static_cast<std::uint8_t>(ch)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

bool looks_like_stun(std::string_view bytes) {
  return bytes.size() >= kStunHeaderSize && static_cast<std::uint8_t>(bytes[0]) < 4 && get32(bytes, 4) == kMagicCookie;
}

bool is_classic_binding_request(std::string_view bytes) {
  if (bytes.size() < kStunHeaderSize || get16(bytes, 0) != 0x0001 || get32(bytes, 4) == kMagicCookie) return false;
  const std::size_t length = get16(bytes, 2);
  if (length % 4 != 0 || kStunHeaderSize + length != bytes.size()) return false;
  for (std::size_t at = kStunHeaderSize; at < bytes.size();) {
    if (bytes.size() - at < 4) return false;
    const std::uint16_t type = get16(bytes, at);
    const std::size_t len = get16(bytes, at + 2);
    if (type < 0x8000) return false;  // comprehension-required: nothing a classic request needs here
    at += 4 + (len + 3) / 4 * 4;
    if (at > bytes.size()) return false;
  }
  return true;
}

std::string answer_classic_binding(std::string_view request, const Endpoint& from) {
  std::string out;
  const std::size_t addr_len = from.ip.v6 ? 20 : 8;
  put16(out, 0x0101);  // Binding success
  put16(out, static_cast<std::uint16_t>(4 + addr_len));
  out.append(request.substr(4, 16));  // the 128-bit transaction ID
  put16(out, attr::MappedAddress);
  put16(out, static_cast<std::uint16_t>(addr_len));
  out.push_back('\0');
  out.push_back(from.ip.v6 ? '\x02' : '\x01');
  put16(out, from.port);
  out.append(reinterpret_cast<const char*>(from.ip.bytes.data()), from.ip.v6 ? 16 : 4);
  return out;
}

Result<StunMessage, StunError> decode_stun(std::string_view bytes) {
  if (!looks_like_stun(bytes)) return unexpected(StunError::NotStun);
  const std::size_t length = get16(bytes, 2);
  if (length % 4 != 0 || kStunHeaderSize + length != bytes.size()) return unexpected(StunError::BadLength);
  StunMessage m;
  m.bytes = bytes;
  const std::uint16_t t = get16(bytes, 0);
  m.cls = static_cast<StunClass>((t >> 4 & 1) | (t >> 7 & 2));
  m.method = static_cast<std::uint16_t>((t & 0x000F) | (t >> 1 & 0x0070) | (t >> 2 & 0x0F80));
  std::copy_n(bytes.begin() + 8, 12, m.id.begin());

  // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count; after
  // MESSAGE-INTEGRITY-SHA256 only FINGERPRINT; nothing may follow FINGERPRINT (RFC 8489 §14.5-14.7).
  enum { Open, AfterMi, AfterMiSha256 } stage = Open;
  std::size_t pos = kStunHeaderSize;
  std::size_t seen = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 4) return unexpected(StunError::BadAttribute);
    const std::uint16_t type = get16(bytes, pos);
    const std::size_t len = get16(bytes, pos + 2);
    const std::size_t padded = (len + 3) & ~std::size_t{3};
    if (bytes.size() - pos - 4 < padded) return unexpected(StunError::BadAttribute);
    if (++seen > kMaxStunAttributes) return unexpected(StunError::TooManyAttributes);
    const StunAttribute a{type, bytes.substr(pos + 4, len), static_cast<std::uint16_t>(pos)};
    if (type == attr::Fingerprint) {
      if (len != 4 || pos + 8 != bytes.size()) return unexpected(StunError::BadAttribute);
      if (get32(a.value, 0) != (crc32(bytes.substr(0, pos)) ^ kFingerprintXor)) {
        return unexpected(StunError::BadFingerprint);
      }
      m.attributes.push_back(a);
    } else if (type == attr::MessageIntegrity) {
      if (stage == Open) {
        m.attributes.push_back(a);
        stage = AfterMi;
      }
    } else if (type == attr::MessageIntegritySha256) {
      if (stage != AfterMiSha256) {
        m.attributes.push_back(a);
        stage = AfterMiSha256;
      }
    } else if (stage == Open) {
      m.attributes.push_back(a);
    }
    pos += 4 + padded;
  }
  return m;
}

const StunAttribute* StunMessage::find(std::uint16_t type) const {
  for (const auto& a : attributes) {
    if (a.type == type) return &a;
  }
  return nullptr;
}

std::vector<std::uint16_t> StunMessage::unknown_required(const std::vector<std::uint16_t>& known) const {
  std::vector<std::uint16_t> out;
  for (const auto& a : attributes) {
    if (comprehension_required(a.type) && std::find(known.begin(), known.end(), a.type) == known.end() &&
        std::find(out.begin(), out.end(), a.type) == out.end()) {
      out.push_back(a.type);
    }
  }
  return out;
}

std::optional<Endpoint> StunMessage::address(std::uint16_t type, bool xored, Transport t) const {
  const StunAttribute* a = find(type);
  if (a == nullptr || a->value.size() < 4) return std::nullopt;
  const auto family = static_cast<std::uint8_t>(a->value[1]);
  Endpoint e;
  e.transport = t;
  e.port = get16(a->value, 2);
  if (xored) e.port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  std::array<std::uint8_t, 16> mask{};
  for (int i = 0; i < 4; ++i) mask[i] = static_cast<std::uint8_t>(kMagicCookie >> (24 - 8 * i));
  std::copy(id.begin(), id.end(), mask.begin() + 4);
  std::size_t n = 0;
  if (family == 0x01 && a->value.size() == 8) {
    n = 4;
  } else if (family == 0x02 && a->value.size() == 20) {
    n = 16;
    e.ip.v6 = true;
  } else {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < n; ++i) {
    e.ip.bytes[i] = static_cast<std::uint8_t>(a->value[4 + i]) ^ (xored ? mask[i] : 0);
  }
  return e;
}

std::optional<Endpoint> StunMessage::mapped_address(Transport t) const {
  if (auto e = address(attr::XorMappedAddress, true, t)) return e;
  return address(attr::MappedAddress, false, t);
}

std::optional<std::pair<int, std::string_view>> StunMessage::error_code() const {
  const StunAttribute* a = find(attr::ErrorCode);
  if (a == nullptr || a->value.size() < 4) return std::nullopt;
  const int hundreds = static_cast<std::uint8_t>(a->value[2]) & 0x07;
  const int number = static_cast<std::uint8_t>(a->value[3]);
  if (hundreds < 3 || hundreds > 6 || number > 99) return std::nullopt;
  return std::pair<int, std::string_view>{hundreds * 100 + number, a->value.substr(4)};
}

bool check_integrity(const StunMessage& m, std::string_view key) {
  return check_hmac(m, attr::MessageIntegrity, EVP_sha1(), key, 20, 20);
}

bool check_integrity_sha256(const StunMessage& m, std::string_view key) {
  return check_hmac(m, attr::MessageIntegritySha256, EVP_sha256(), key, 16, 32);
}

std::string long_term_key(std::string_view username, std::string_view realm, std::string_view password, bool sha256) {
  std::string in;
  in.reserve(username.size() + realm.size() + password.size() + 2);
  in.append(username).append(":").append(realm).append(":").append(password);
  std::array<unsigned char, EVP_MAX_MD_SIZE> d{};
  unsigned len = 0;
  EVP_Digest(in.data(), in.size(), d.data(), &len, sha256 ? EVP_sha256() : EVP_md5(), nullptr);
  return {reinterpret_cast<const char*>(d.data()), len};
}

StunBuilder::StunBuilder(StunClass cls, std::uint16_t m, const StunTransactionId& id, char pad) : pad_(pad) {
  out_.reserve(96);
  put16(out_, message_type(cls, m));
  put16(out_, 0);
  put32(out_, kMagicCookie);
  out_.append(reinterpret_cast<const char*>(id.data()), id.size());
}

void StunBuilder::set_length(std::size_t body) {
  set16(out_, 2, static_cast<std::uint16_t>(body));
}

StunBuilder& StunBuilder::add(std::uint16_t type, std::string_view value) {
  put16(out_, type);
  put16(out_, static_cast<std::uint16_t>(value.size()));
  out_.append(value);
  out_.append((4 - value.size() % 4) % 4, pad_);
  set_length(out_.size() - kStunHeaderSize);
  return *this;
}

StunBuilder& StunBuilder::add_u32(std::uint16_t type, std::uint32_t v) {
  std::string b;
  put32(b, v);
  return add(type, b);
}

StunBuilder& StunBuilder::add_u64(std::uint16_t type, std::uint64_t v) {
  std::string b;
  put32(b, static_cast<std::uint32_t>(v >> 32));
  put32(b, static_cast<std::uint32_t>(v));
  return add(type, b);
}

StunBuilder& StunBuilder::add_address(std::uint16_t type, const Endpoint& e, bool xored) {
  std::string v;
  v.push_back('\0');
  v.push_back(e.ip.v6 ? '\x02' : '\x01');
  put16(v, xored ? static_cast<std::uint16_t>(e.port ^ (kMagicCookie >> 16)) : e.port);
  const std::size_t n = e.ip.v6 ? 16 : 4;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t mask = 0;
    if (xored) {
      mask = i < 4 ? static_cast<std::uint8_t>(kMagicCookie >> (24 - 8 * i))
                   : static_cast<std::uint8_t>(out_[8 + (i - 4)]);  // the transaction id
    }
    v.push_back(static_cast<char>(e.ip.bytes[i] ^ mask));
  }
  return add(type, v);
}

StunBuilder& StunBuilder::add_error(int code, std::string_view reason) {
  std::string v;
  put16(v, 0);
  v.push_back(static_cast<char>(code / 100));
  v.push_back(static_cast<char>(code % 100));
  v.append(reason.substr(0, 763));  // RFC 8489 §14.8: under 128 characters, 763 bytes
  return add(attr::ErrorCode, v);
}

StunBuilder& StunBuilder::add_unknown_attributes(const std::vector<std::uint16_t>& types) {
  std::string v;
  for (auto t : types) put16(v, t);
  return add(attr::UnknownAttributes, v);
}

StunBuilder& StunBuilder::add_integrity(std::string_view key) {
  set_length(out_.size() + 24 - kStunHeaderSize);
  unsigned len = 0;
  const auto mac = hmac(EVP_sha1(), key, out_, len);
  return add(attr::MessageIntegrity, std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

StunBuilder& StunBuilder::add_integrity_sha256(std::string_view key) {
  set_length(out_.size() + 36 - kStunHeaderSize);
  unsigned len = 0;
  const auto mac = hmac(EVP_sha256(), key, out_, len);
  return add(attr::MessageIntegritySha256, std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

StunBuilder& StunBuilder::add_fingerprint() {
  set_length(out_.size() + 8 - kStunHeaderSize);
  return add_u32(attr::Fingerprint, crc32(out_) ^ kFingerprintXor);
}

std::string StunBuilder::finish() && {
  return std::move(out_);
}

std::string answer_binding(const StunMessage& request, const Endpoint& from, std::string_view software) {
  // What a Binding server without credentials understands in a request; anything else that is
  // comprehension-required (RFC 5780's CHANGE-REQUEST, for one) is refused with 420 (§6.3.1.1).
  static const std::vector<std::uint16_t> kKnown = {attr::MappedAddress,
                                                    attr::Username,
                                                    attr::MessageIntegrity,
                                                    attr::ErrorCode,
                                                    attr::UnknownAttributes,
                                                    attr::Realm,
                                                    attr::Nonce,
                                                    attr::MessageIntegritySha256,
                                                    attr::PasswordAlgorithm,
                                                    attr::Userhash,
                                                    attr::XorMappedAddress,
                                                    attr::Priority,
                                                    attr::UseCandidate};
  const bool fingerprint = request.find(attr::Fingerprint) != nullptr;
  const auto unknown = request.unknown_required(kKnown);
  if (!unknown.empty()) {
    StunBuilder b(StunClass::Error, request.method, request.id);
    b.add_error(420, "Unknown Attribute").add_unknown_attributes(unknown);
    if (!software.empty()) b.add(attr::Software, software);
    if (fingerprint) b.add_fingerprint();
    return std::move(b).finish();
  }
  StunBuilder b(StunClass::Success, request.method, request.id);
  b.add_xor_mapped_address(from);
  if (!software.empty()) b.add(attr::Software, software);
  if (fingerprint) b.add_fingerprint();
  return std::move(b).finish();
}

}  // namespace p2psip::nat
