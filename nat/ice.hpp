// ICE descriptions as an Attach carries them: credentials and candidates written as SDP attribute
// lines (RFC 8839 §5.1's grammar), the body type RFC 8840 names for trickled fragments
// (application/trickle-ice-sdpfrag). Sans-I/O values; the agent that gathers and checks them
// (libnice in the runtime, a NAT model in the simulator) is behind nat/ice_links.hpp's IcePort.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/result.hpp"

namespace p2psip::nat {

inline constexpr std::string_view kIceContentType = "application/trickle-ice-sdpfrag";

enum class CandidateType : std::uint8_t {
  Host,             ///< an address of the agent's own interface
  ServerReflexive,  ///< where a STUN server saw it (its NAT's mapping)
  PeerReflexive,    ///< learnt from a connectivity check
  Relayed,          ///< an address allocated on a TURN server
};
std::string_view candidate_type_name(CandidateType t);  ///< "host", "srflx", "prflx", "relay"

/// One UDP candidate of component `component` (RFC 8445 §5.1). Only UDP with IP literals is taken:
/// ICE-TCP and mDNS names are skipped when read (RFC 8839 §5.1: unknown transports are ignored).
struct IceCandidate {
  std::string foundation;  ///< 1-32 ice-chars
  std::uint16_t component = 1;
  std::uint32_t priority = 0;
  Endpoint address;  ///< transport Udp
  CandidateType type = CandidateType::Host;
  std::optional<Endpoint> related;  ///< raddr/rport, for reflexive and relayed candidates
  friend bool operator==(const IceCandidate&, const IceCandidate&) = default;
};

struct IceCredentials {
  std::string ufrag;  ///< 4-256 ice-chars
  std::string pwd;    ///< 22-256 ice-chars
  friend bool operator==(const IceCredentials&, const IceCredentials&) = default;
};

/// What one side of an Attach says: its credentials and the candidates gathered so far.
struct IceDescription {
  IceCredentials credentials;
  std::vector<IceCandidate> candidates;
  bool end_of_candidates = false;  ///< RFC 8840 §4.4: nothing more will follow
  friend bool operator==(const IceDescription&, const IceDescription&) = default;
};

struct IceLimits {
  std::size_t max_candidates = 24;  ///< more are refused (a description is one datagram's worth)
  std::size_t max_bytes = 4096;
};

/// "candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host" (no "a=").
std::string encode_candidate(const IceCandidate& c);
/// One candidate attribute's value (with or without a leading "a=" and "candidate:"). An error
/// says what is wrong; a well-formed candidate this agent does not use (TCP, a host name) gives
/// nullopt.
Result<std::optional<IceCandidate>, std::string> parse_candidate(std::string_view text);

/// The body: a=ice-ufrag, a=ice-pwd, one a=candidate per candidate, a=end-of-candidates; CRLF lines.
std::string encode_ice(const IceDescription& d);
/// Reads a body as encode_ice writes it (LF lines too; other attributes are skipped, RFC 8840
/// §4.3). An error names the first problem: missing or malformed credentials, a malformed
/// candidate, too many candidates, too many bytes.
Result<IceDescription, std::string> parse_ice(std::string_view body, const IceLimits& limits = {});

/// RFC 8445 §5.1.2.1's priority: (2^24)type-preference + (2^8)local-preference + (256 - component).
std::uint32_t candidate_priority(CandidateType t, std::uint16_t local_preference, std::uint16_t component);

}  // namespace p2psip::nat
