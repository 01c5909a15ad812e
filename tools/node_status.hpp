// What the control port answers, rendered from the peer's structures: /status as JSON or text,
// and the outcomes of put, get, lookup and locate. The JSON comes from one library (nlohmann's),
// with the keys in the order they have always had.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "node/peer/peer.hpp"
#include "node/runtime/sip_runtime.hpp"

namespace p2psip::tools {

using Json = nlohmann::ordered_json;

/// JSON text of `j` as the control port sends it: compact, invalid UTF-8 never thrown on.
std::string json_text(const Json& j);
/// A string field that holds any bytes: `name` when they are UTF-8, `name`_base64 otherwise.
void put_bytes(Json& j, const std::string& name, const std::string& bytes);

/// GET /status: the peer and the runtimes that carry its two addresses (`phones`: null when none).
Json status_json(const peer::PeerStatus& s, const runtime::RuntimeStats& overlay, const runtime::RuntimeStats* phones);
/// GET /status?format=text: what `p2psip status` prints.
std::string status_text(const peer::PeerStatus& s);
/// The answer to /put, /get and /lookup; `http` gets the HTTP status to answer with.
Json route_json(const std::string& key, dht::RouteOp op, const dht::RouteResult& r, int& http);
/// The answer to /locate.
Json location_json(const std::string& aor, const peer::Location& where, int& http);

}  // namespace p2psip::tools
