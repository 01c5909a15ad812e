// What an element does with a parsed message before any processing:
//  - check_message: RFC 3261 validity (syntax of the interpreted headers, mandatory headers, single
//    values, scalar ranges, CSeq method); an invalid request is answered 400, an invalid response dropped.
//  - check_request_capabilities: RFC 3261 §8.2 UAS checks in the RFC's order (method, URI scheme,
//    Require, Content-Type, Accept), each answered with its status code and the header it requires.
//  - make_response: a response to a request as RFC 3261 §8.2.6 builds it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/sip/headers.hpp"
#include "node/sip/message.hpp"

namespace p2psip::sip {

/// An answer to a request that will not be processed: status, reason phrase and one extra header
/// (Unsupported for 420, Accept for 415, Allow for 405) when the RFC requires it. Status 0: discard.
struct Rejection {
  int status = 400;
  std::string reason;
  HeaderId extra_header = HeaderId::Other;
  std::string extra_value;
};

/// RFC 3261 validity of a parsed message. nullopt when valid.
std::optional<Rejection> check_message(const Message& m);
/// The same, and for a valid message the top Via in `top` (what top_via(m) returns), parsed on the way.
std::optional<Rejection> check_message(const Message& m, std::optional<Via>& top);

/// What a UAS supports; check_request_capabilities answers requests beyond it.
struct Capabilities {
  std::vector<std::string> methods = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"};
  std::vector<std::string> uri_schemes = {"sip", "sips"};
  std::vector<std::string> option_tags;                                             ///< extensions supported (Require)
  std::vector<std::string> content_types = {"application/sdp", "multipart/mixed"};  ///< bodies understood
  std::string answer_type = "application/sdp";  ///< the body type this element answers INVITE with
};

/// RFC 3261 §8.2.1-§8.2.3 checks of a valid request. nullopt when the request may be processed.
std::optional<Rejection> check_request_capabilities(const Message& request, const Capabilities& caps);

/// RFC 3261 §16.3 step 3: a request with Max-Forwards 0 that would be forwarded is answered 483.
std::optional<Rejection> check_forwardable(const Message& request);

struct Via;
/// True when a response routed by this Via would go to a broadcast or multicast address that the
/// Via did not ask for with maddr: such a response is discarded (RFC 4475 §3.3.10).
bool forbidden_destination(const Via& via);

/// Builds a response to `request` (RFC 3261 §8.2.6): Via fields, From, To, Call-ID and CSeq copied,
/// a To tag added when `to_tag` is non-empty and the request's To has none, Timestamp echoed on 100.
Message make_response(const Message& request, int status, std::string_view reason = {}, std::string_view to_tag = {});

/// The response for a rejection, with its extra header.
Message make_rejection(const Message& request, const Rejection& r, std::string_view to_tag = {});

/// A response for a request whose parse failed (from the error's partial text): the request's
/// Via, From, To, Call-ID and CSeq lines are copied from the raw bytes as far as they can be found.
/// Returns nullopt when no Via can be found (nowhere to send it).
std::optional<std::string> make_error_response_raw(std::string_view request_bytes, int status, std::string_view reason);

}  // namespace p2psip::sip
