// p2psip node (the overlay daemon) and the control-port clients: status, put, get, lookup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace p2psip::tools {

struct NodeOptions {
  std::string overlay;   ///< empty: the --trust root's overlay, or p2psip.local in development mode
  std::string identity;  ///< directory with the node's key.pem and cert.pem (enrolled mode)
  std::string trust;     ///< the overlay root's certificate (enrolled mode)
  std::string users;     ///< directory of user identities (one subdirectory each: key.pem, cert.pem)
  bool dev = false;      ///< development mode: self-signed identities, no CA
  std::string listen = "127.0.0.1:5070";
  std::vector<std::string> bootstrap;
  std::string control = "127.0.0.1:8070";
  std::string data_dir;
  double stabilize_interval_s = 30;
  std::string log_level = "info";
  std::size_t t1_ms = 500;
  double hop_timeout_ms = -1;  ///< negative: the overlay's default; 0: off (Timer F only)
  std::size_t successors = 8;
  std::size_t replicas = 2;
  bool iterative = false;
  std::string overlay_transport = "udp";             ///< the transport of overlay links: udp or tcp
  std::string ua_listen = "127.0.0.1:5060";          ///< where local softphones register and call; "off": none
  std::uint32_t min_expires = 60;                    ///< registrations shorter than this get 423
  std::uint32_t max_expires = 3600;                  ///< longer registrations are shortened to this
  std::uint32_t entry_lifetime_s = 300;              ///< overlay lifetime of a registration entry (refreshed)
  std::size_t max_bindings = 16;                     ///< contacts per user at this node
  std::size_t max_users = 100000;                    ///< users registered at this node
  std::size_t max_calls = 10000;                     ///< requests the UA side proxies at once
  bool ua_digest = false;                            ///< phones log in (digest) even on loopback; always off loopback
  std::string ua_digest_algorithms = "SHA-256,MD5";  ///< offered in this order
  double peer_rate = 200;                            ///< overlay requests per second per peer address (0: no limit)
  double peer_burst = 400;                           ///< what a peer may send at once
  std::size_t max_value_bytes = 8192;                ///< largest record value stored
  std::size_t max_records_per_owner = 1000;          ///< entries one owner may have at this node
  std::uint32_t nat_check_interval_s = 600;          ///< seconds between reachability checks (0: none)
  std::string role = "auto";                         ///< auto, peer or client (RFC 6940 §3.2.1)
  std::size_t relay_max_clients = 200;               ///< clients this node relays for as a peer (0: none)
  std::string ice = "on";                            ///< ICE links to peers behind cone NATs: on or off
  std::string turn;                ///< turn:HOST:PORT[?transport=tcp], relayed candidates for the links
  std::string turn_user;           ///< the TURN server's long-term credentials (RFC 8489 §9.2)
  std::string turn_password_file;  ///< a file whose first line is the password (never logged)
  /// A file whose first line is the TURN server's REST secret (coturn's --static-auth-secret with
  /// --use-auth-secret): the node makes its own credentials, and those it hands out (--turn-service).
  std::string turn_secret_file;
  std::string turn_service = "off";  ///< on: announce --turn to the overlay (RFC 6940 §9's TURN-SERVICE)
  int turn_density = 10;             ///< entries announced (RFC 6940 §9's turn-density, 1..20)
};
/// Applies a TOML file's keys (the long flag names) to `o`, skipping those in `given` (flags set on
/// the command line). False with `error` naming the file, key and problem.
bool apply_node_config(const std::string& path, const std::set<std::string>& given, NodeOptions& o, std::string& error);
/// Runs a node until SIGTERM or SIGINT, then leaves the overlay gracefully and returns 0.
int run_node(const NodeOptions& options);

struct ControlOptions {
  std::string control = "127.0.0.1:8070";
  bool json = false;
  double timeout_s = 10;
};
int control_status(const ControlOptions& o);
int control_put(const ControlOptions& o, const std::string& key, const std::string& value, unsigned lifetime_s);
int control_get(const ControlOptions& o, const std::string& key);
int control_lookup(const ControlOptions& o, const std::string& key);
/// Prints the registration entries of a user (one line per serving node); 1 when it has none.
int control_locate(const ControlOptions& o, const std::string& aor);
/// Reads every node's /status and checks that successors and predecessors form the ring their ids
/// define. Prints the ring in id order; exit 0 when correct.
int ring_check(const ControlOptions& o, const std::vector<std::string>& controls, bool quiet);

}  // namespace p2psip::tools
