// STUN messages (RFC 8489): decoding into views of the received bytes, building, and the checks
// that guard them (MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256, FINGERPRINT). Sans-I/O: bytes in,
// bytes out; no sockets, no clocks. The keys are the caller's (short-term: the password; long-term:
// long_term_key).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/result.hpp"

namespace p2psip::nat {

inline constexpr std::uint32_t kMagicCookie = 0x2112A442;  ///< RFC 8489 §5
inline constexpr std::size_t kStunHeaderSize = 20;
/// Attributes a decoded message may carry; more is refused (bounds the work per datagram).
inline constexpr std::size_t kMaxStunAttributes = 48;

/// The two bits of the message type that say what kind of message it is (RFC 8489 §5).
enum class StunClass : std::uint8_t { Request = 0, Indication = 1, Success = 2, Error = 3 };

namespace method {
inline constexpr std::uint16_t Binding = 0x001;   ///< RFC 8489
inline constexpr std::uint16_t Allocate = 0x003;  ///< RFC 8656 (TURN)
inline constexpr std::uint16_t Refresh = 0x004;
inline constexpr std::uint16_t Send = 0x006;
inline constexpr std::uint16_t Data = 0x007;
inline constexpr std::uint16_t CreatePermission = 0x008;
inline constexpr std::uint16_t ChannelBind = 0x009;
}  // namespace method

/// Attribute types (RFC 8489 §18.3; RFC 8445 §16.1 for ICE's; RFC 5780 §7 for NAT discovery's).
/// Below 0x8000 an attribute is comprehension-required: a receiver that does not know it must
/// refuse the request (420) or discard the response.
namespace attr {
inline constexpr std::uint16_t MappedAddress = 0x0001;
inline constexpr std::uint16_t Username = 0x0006;
inline constexpr std::uint16_t MessageIntegrity = 0x0008;
inline constexpr std::uint16_t ErrorCode = 0x0009;
inline constexpr std::uint16_t UnknownAttributes = 0x000A;
inline constexpr std::uint16_t Realm = 0x0014;
inline constexpr std::uint16_t Nonce = 0x0015;
inline constexpr std::uint16_t MessageIntegritySha256 = 0x001C;
inline constexpr std::uint16_t PasswordAlgorithm = 0x001D;
inline constexpr std::uint16_t Userhash = 0x001E;
inline constexpr std::uint16_t XorMappedAddress = 0x0020;
inline constexpr std::uint16_t Priority = 0x0024;
inline constexpr std::uint16_t UseCandidate = 0x0025;
inline constexpr std::uint16_t PasswordAlgorithms = 0x8002;
inline constexpr std::uint16_t AlternateDomain = 0x8003;
inline constexpr std::uint16_t Software = 0x8022;
inline constexpr std::uint16_t AlternateServer = 0x8023;
inline constexpr std::uint16_t Fingerprint = 0x8028;
inline constexpr std::uint16_t IceControlled = 0x8029;
inline constexpr std::uint16_t IceControlling = 0x802A;
inline constexpr std::uint16_t ResponseOrigin = 0x802B;
inline constexpr std::uint16_t OtherAddress = 0x802C;
}  // namespace attr

/// True where an attribute of this type must be understood (RFC 8489 §14: 0x0000-0x7FFF).
constexpr bool comprehension_required(std::uint16_t type) {
  return type < 0x8000;
}

using StunTransactionId = std::array<std::uint8_t, 12>;

/// Why bytes are not a STUN message this node accepts. A receiver discards such a datagram
/// silently (RFC 8489 §6.3): there is no one to answer.
enum class StunError : std::uint8_t {
  NotStun,            ///< the first two bits, the magic cookie or the size say it is something else
  BadLength,          ///< the header's length disagrees with the bytes, or is not a multiple of 4
  BadAttribute,       ///< an attribute runs past the end, or FINGERPRINT is not last
  TooManyAttributes,  ///< more than kMaxStunAttributes
  BadFingerprint,     ///< FINGERPRINT present and wrong
};
std::string_view describe(StunError e);

struct StunAttribute {
  std::uint16_t type = 0;
  std::string_view value;    ///< into the message's bytes, without padding
  std::uint16_t offset = 0;  ///< where the attribute's header starts in the message
};

/// A decoded message: views into the bytes it was decoded from, which must outlive it.
struct StunMessage {
  StunClass cls = StunClass::Request;
  std::uint16_t method = 0;
  StunTransactionId id{};
  std::string_view bytes;                 ///< the whole message
  std::vector<StunAttribute> attributes;  ///< in order; those after the integrity attributes left out

  [[nodiscard]] const StunAttribute* find(std::uint16_t type) const;
  /// The comprehension-required attribute types outside `known`, each once, in message order.
  [[nodiscard]] std::vector<std::uint16_t> unknown_required(const std::vector<std::uint16_t>& known) const;
  /// XOR-MAPPED-ADDRESS (or, failing that, MAPPED-ADDRESS) as an endpoint of transport `t`.
  [[nodiscard]] std::optional<Endpoint> mapped_address(Transport t = Transport::Udp) const;
  /// An address attribute of type `type` (XOR-encoded when `xored`).
  [[nodiscard]] std::optional<Endpoint> address(std::uint16_t type, bool xored, Transport t = Transport::Udp) const;
  /// ERROR-CODE's number (300-699) and reason; nullopt when absent or malformed.
  [[nodiscard]] std::optional<std::pair<int, std::string_view>> error_code() const;
};

/// Whether a datagram's first bytes are STUN's (RFC 7983 §7: the first octet is 0 to 3, and the
/// magic cookie follows the length; RFC 5626 §3.5.2 tells STUN from SIP the same way). Cheap: it
/// decides which parser a datagram goes to, before either runs.
bool looks_like_stun(std::string_view bytes);

/// Decodes `bytes` (exactly one message: a datagram, or a frame cut from a stream). Checks the
/// header, every attribute's bounds and, when present, FINGERPRINT (RFC 8489 §14.7). Does not check
/// message integrity: that needs the key, which check_integrity takes.
Result<StunMessage, StunError> decode_stun(std::string_view bytes);

/// MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) of `m` under `key`: true when present and right.
bool check_integrity(const StunMessage& m, std::string_view key);
/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6; truncated to 16..32 bytes): true when present and right.
bool check_integrity_sha256(const StunMessage& m, std::string_view key);

/// The long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password), or
/// SHA-256 of the same for PASSWORD-ALGORITHM SHA-256. The password is taken as given (OpaqueString
/// processing is the caller's).
std::string long_term_key(std::string_view username, std::string_view realm, std::string_view password,
                          bool sha256 = false);

/// CRC-32 as FINGERPRINT uses it (ISO HDLC, the one in zlib), before the XOR with 0x5354554E.
std::uint32_t crc32(std::string_view bytes);

/// Builds one message. Attributes are written in the order they are added; add_integrity,
/// add_integrity_sha256 and add_fingerprint (in that order, each at most once) come last.
class StunBuilder {
 public:
  /// `pad`: the byte that pads attribute values to four (RFC 8489 §14: any value, ignored by
  /// receivers; zero here, a space in RFC 5769's vectors).
  StunBuilder(StunClass cls, std::uint16_t method, const StunTransactionId& id, char pad = '\0');

  StunBuilder& add(std::uint16_t type, std::string_view value);
  StunBuilder& add_u32(std::uint16_t type, std::uint32_t v);
  StunBuilder& add_u64(std::uint16_t type, std::uint64_t v);
  /// An address attribute: XOR-encoded (RFC 8489 §14.2) when `xored`, plain (§14.1) otherwise.
  StunBuilder& add_address(std::uint16_t type, const Endpoint& e, bool xored);
  StunBuilder& add_xor_mapped_address(const Endpoint& e) { return add_address(attr::XorMappedAddress, e, true); }
  /// ERROR-CODE (RFC 8489 §14.8): `code` 300..699 and a reason phrase.
  StunBuilder& add_error(int code, std::string_view reason);
  StunBuilder& add_unknown_attributes(const std::vector<std::uint16_t>& types);
  StunBuilder& add_integrity(std::string_view key);
  StunBuilder& add_integrity_sha256(std::string_view key);
  StunBuilder& add_fingerprint();

  /// The message's bytes; the builder is spent.
  [[nodiscard]] std::string finish() &&;
  [[nodiscard]] const std::string& bytes() const { return out_; }

 private:
  void set_length(std::size_t body);
  std::string out_;
  char pad_;
};

/// Answers a Binding request (RFC 8489 §6.3.1, §7.3.1): a success response naming `from` in
/// XOR-MAPPED-ADDRESS, with `software` when not empty and FINGERPRINT when the request had one; or
/// 420 with UNKNOWN-ATTRIBUTES when the request carries a comprehension-required attribute a
/// Binding server does not know. Used where no credentials apply (the overlay's and the phones'
/// ports, RFC 5626 keep-alives).
std::string answer_binding(const StunMessage& request, const Endpoint& from, std::string_view software);

/// An RFC 3489 ("classic STUN") Binding request: the first octet below 4 (RFC 7983), no magic
/// cookie, a 128-bit transaction ID in octets 4-19, and no attribute that must be understood
/// (CHANGE-REQUEST, say, which one address cannot honour). libnice's agents ask their STUN server
/// this way for their server-reflexive candidates.
bool is_classic_binding_request(std::string_view bytes);
/// RFC 8489 §12.2: its answer is a Binding success with the request's 128-bit transaction ID and
/// MAPPED-ADDRESS (a classic client knows no XOR-MAPPED-ADDRESS), and nothing else.
std::string answer_classic_binding(std::string_view request, const Endpoint& from);

}  // namespace p2psip::nat
