// Typed views of the header fields the stack interprets (RFC 3261 §20, grammar of §25.1).
// Parsers are strict where the grammar is, and return false/nullopt on anything malformed;
// every view points into the header value given to them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "node/sip/message.hpp"
#include "node/sip/uri.hpp"

namespace p2psip::sip {

/// Header parameters as written (";tag=1 ; q = 0.3"): validated once, looked up by name on demand.
struct HeaderParams {
  std::string_view raw;
  /// The parameter's value (quoted strings keep their quotes), empty for a flag parameter, nullopt if absent.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  [[nodiscard]] bool has(std::string_view name) const { return get(name).has_value(); }
  /// The parameters as written, less every one with this name.
  [[nodiscard]] std::string without(std::string_view name) const;
  /// Appends what without(name) returns to `out`.
  void append_without(std::string& out, std::string_view name) const;
};

/// RFC 3261 §20.42 Via: sent-protocol, sent-by and the branch/received/rport/maddr/ttl parameters.
struct Via {
  std::string_view protocol;   ///< "SIP"
  std::string_view version;    ///< "2.0"
  std::string_view transport;  ///< "UDP", "TCP", or any token (RFC 4475 §3.1.1.10)
  std::string_view host;       ///< hostname, IPv4 or [IPv6]
  std::optional<std::uint16_t> port;
  HeaderParams params;
  // Found while parsing (the first of each name, as params.get finds): what transaction matching
  // and response routing read for every message, without scanning the parameters again.
  std::string_view branch_value;          ///< empty when there is no branch
  std::optional<std::string_view> rport;  ///< RFC 3581: empty value when asked for, the port when filled
  bool has_received = false;

  [[nodiscard]] std::string_view branch() const { return branch_value; }
  /// True when the branch starts with the RFC 3261 magic cookie and has something after it.
  [[nodiscard]] bool rfc3261_branch() const;
};

/// Parses every via-parm of one Via field value, appending to `out`. False when any is malformed.
bool parse_via_list(std::string_view value, std::vector<Via>& out);
/// parse_via_list's answer without keeping the via-parms; the first in `first` when given.
bool valid_via_list(std::string_view value, std::optional<Via>* first = nullptr);
/// The first via-parm of a field value.
std::optional<Via> parse_first_via(std::string_view value);
/// The topmost Via of a message (first value of the first Via field).
std::optional<Via> top_via(const Message& m);

/// name-addr / addr-spec with header parameters (From, To, Contact, Route, Record-Route).
struct NameAddress {
  std::string_view display_name;  ///< as written, quotes included; empty when none
  Uri uri;
  HeaderParams params;
  bool bracketed = false;  ///< the URI was written within <>
  bool star = false;       ///< the Contact value "*"
};

/// From/To: one name-addr or addr-spec. Lenient about an unquoted display name with non-token
/// characters and about LWS inside <> (RFC 4475 §3.1.2.14-15 allow accepting these).
std::optional<NameAddress> parse_name_address(std::string_view value);
/// Whether parse_name_address(value) succeeds. The simplest form, `<sip:user@host[:port]>` then
/// `;name=value` parameters, all of letters, digits, '-', '.' and '_' (what overlay nodes and most
/// user agents send in From and To), is recognised without building the parse.
bool valid_name_address(std::string_view value);
/// True when `params` is *( ";" name "=" value ), each name and value a run of letters, digits,
/// '-', '.' and '_': parameters every parser here takes as written (they are token characters).
/// The fast paths for simple name-addrs check what follows the URI with it.
bool plain_params(std::string_view params);
/// A comma-separated list (Contact, Route, Record-Route); `allow_star` accepts "*" alone (Contact).
bool parse_name_address_list(std::string_view value, std::vector<NameAddress>& out, bool allow_star);

/// RFC 3261 §20.16 CSeq: a number below 2**31 and a method token.
struct CSeq {
  std::uint32_t number = 0;
  std::string_view method;
};
std::optional<CSeq> parse_cseq(std::string_view value);

/// Comma-separated tokens (Require, Proxy-Require, Supported, Allow, ...). False on anything else.
bool parse_token_list(std::string_view value, std::vector<std::string_view>& out);

/// type "/" subtype *(SEMI m-parameter), as in Content-Type and each Accept range.
struct MediaType {
  std::string_view type;
  std::string_view subtype;
  HeaderParams params;
  /// True when this (possibly wildcard) range covers type/subtype.
  [[nodiscard]] bool covers(std::string_view t, std::string_view s) const;
};
std::optional<MediaType> parse_media_type(std::string_view value);
bool parse_media_range_list(std::string_view value, std::vector<MediaType>& out);

/// A delta-seconds style value (Expires, Max-Forwards, ...): 1*DIGIT not above max.
std::optional<std::uint64_t> parse_uint_header(std::string_view value, std::uint64_t max);

/// Removes surrounding quotes and quoted-pair escapes from a quoted-string; returns the text as is otherwise.
std::string unquote(std::string_view text);

}  // namespace p2psip::sip
