// URIs (RFC 3261 §19.1, §25.1). sip: and sips: URIs are parsed into their parts; tel: URIs (RFC 3966)
// into number and parameters; any other scheme is kept opaque and intact (RFC 4475 §3.3.2, §3.3.4).
// All parts are views into the text given to parse_uri.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/address.hpp"

namespace p2psip::sip {

enum class UriScheme : std::uint8_t { Sip, Sips, Tel, Other };

struct Uri {
  UriScheme scheme = UriScheme::Other;
  std::string_view scheme_text;  ///< as written
  std::string_view user;         ///< escaped, as written (sip/sips); the number for tel
  std::string_view password;     ///< escaped, as written
  std::string_view host;         ///< hostname, IPv4, or IPv6 reference with its brackets
  std::optional<std::uint16_t> port;
  std::string_view params;   ///< ";a=b;c" as written, with the leading ';' (empty when none)
  std::string_view headers;  ///< "a=b&c=d" after '?', as written (empty when none)
  std::string_view opaque;   ///< everything after "scheme:" for Other
  std::string_view text;     ///< the whole URI

  /// Value of a URI parameter (case-insensitive name). An empty view for a parameter without value;
  /// nullopt when absent.
  [[nodiscard]] std::optional<std::string_view> param(std::string_view name) const;
  [[nodiscard]] bool has_param(std::string_view name) const { return param(name).has_value(); }
  [[nodiscard]] bool is_sip() const { return scheme == UriScheme::Sip || scheme == UriScheme::Sips; }
  /// "host:port" or "host" as written.
  [[nodiscard]] std::string host_port() const;
};

/// Parses a URI. Returns nullopt when the text is not a valid URI of its scheme: an invalid character,
/// a bad escape, an empty parameter name, a port above 65535, an empty host.
std::optional<Uri> parse_uri(std::string_view text);
/// The same into `out`; false (and `out` unspecified) when the text is not a valid URI.
bool parse_uri_into(std::string_view text, Uri& out);

/// Where a sip: URI with an IP literal host points: its port (5060 when absent) and its transport
/// parameter (UDP unless it says tcp or tls). nullopt for a name: names are never resolved.
std::optional<Endpoint> uri_endpoint(const Uri& uri);

/// RFC 3261 §19.1.4 comparison of two sip/sips URIs: scheme, user and password case-sensitively after
/// unescaping, host case-insensitively, port, and the transport/user/ttl/method/maddr parameters.
bool uri_equivalent(const Uri& a, const Uri& b);

/// Decodes %HH escapes. Invalid escapes are kept as written.
std::string unescape(std::string_view text);

}  // namespace p2psip::sip
