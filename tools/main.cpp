// p2psip: one command line, git-style subcommands.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "tools/identity_commands.hpp"
#include "tools/node_command.hpp"
#include "tools/sim_command.hpp"
#include "tools/sip_commands.hpp"

namespace {
int run(int argc, char** argv) {
  // A write to a connection the peer has reset must come back as an error (EPIPE, which libuv hands
  // to its write callback), not kill the process: a node leaving while its neighbours already
  // left died of SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"p2psip: a peer-to-peer SIP overlay node (Chord over SIP)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "p2psip 0.1.0");

  p2psip::tools::SipCheckOptions check;
  auto* check_cmd = app.add_subcommand("sip-check", "Parse each file as one SIP datagram and say whether it is valid");
  check_cmd->add_option("files", check.files, "Files holding one SIP message each")->required();
  check_cmd->add_option("--max-message-bytes", check.limits.max_message_bytes, "Largest message accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-headers", check.limits.max_headers, "Most header fields accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-header-line", check.limits.max_header_line, "Longest header field accepted")
      ->capture_default_str();
  check_cmd->add_option("--max-body-bytes", check.limits.max_body_bytes, "Largest body accepted")
      ->capture_default_str();
  check_cmd->add_flag("--answer", check.show_answer,
                      "For valid requests, also print what the sip-echo element answers");

  p2psip::tools::SipBenchOptions bench;
  auto* bench_cmd =
      app.add_subcommand("sip-bench", "Parse and re-serialize SIP messages in a loop and print the rates");
  bench_cmd->add_option("files", bench.files, "Files holding one SIP message each")->required();
  bench_cmd->add_option("--iterations", bench.iterations, "Messages parsed per measurement")->capture_default_str();

  p2psip::tools::SipEchoOptions echo;
  auto* echo_cmd = app.add_subcommand(
      "sip-echo", "Run a SIP test element: OPTIONS 200, INVITE 180/200 (SDP mirrored), ACK, BYE, CANCEL");
  echo_cmd->add_option("--listen", echo.listen, "Address and port for UDP and TCP (port 0: any free port)")
      ->capture_default_str();
  bool no_udp = false;
  bool no_tcp = false;
  echo_cmd->add_flag("--no-udp", no_udp, "Do not listen on UDP");
  echo_cmd->add_flag("--no-tcp", no_tcp, "Do not listen on TCP");
  echo_cmd->add_option("--answer-delay-ms", echo.answer_delay_ms, "Time between 180 and 200")->capture_default_str();
  echo_cmd->add_option("--t1-ms", echo.t1_ms, "RFC 3261 T1")->capture_default_str();
  echo_cmd->add_option("--t2-ms", echo.t2_ms, "RFC 3261 T2")->capture_default_str();
  echo_cmd->add_option("--t4-ms", echo.t4_ms, "RFC 3261 T4")->capture_default_str();
  echo_cmd->add_option("--max-connections", echo.max_connections, "Most TCP connections at once")
      ->capture_default_str();
  echo_cmd->add_option("--tcp-idle-timeout", echo.tcp_idle_timeout_s, "Seconds before an idle connection is closed")
      ->capture_default_str();
  echo_cmd->add_option("--max-dialogs", echo.max_dialogs, "Most calls at once (then 503)")->capture_default_str();
  echo_cmd->add_option("--max-message-bytes", echo.limits.max_message_bytes, "Largest message accepted")
      ->capture_default_str();
  echo_cmd->add_option("--max-body-bytes", echo.limits.max_body_bytes, "Largest body accepted")->capture_default_str();

  p2psip::tools::NodeOptions node;
  auto* node_cmd = app.add_subcommand("node", "Run an overlay node (Chord over SIP) until SIGTERM or SIGINT");
  std::string node_config;
  node_cmd->add_option("--config", node_config, "Read options from a TOML file (keys: the long flags; flags win)");
  node_cmd->add_option("--overlay", node.overlay,
                       "Overlay name (default: the --trust root's, or p2psip.local with --dev)");
  node_cmd->add_option("--identity", node.identity,
                       "Directory with the node's key.pem and cert.pem (from p2psip ca issue)");
  node_cmd->add_option("--trust", node.trust, "The overlay root's certificate (ca.crt)");
  node_cmd->add_option("--users", node.users,
                       "Directory of user identities whose phones may register here (a subdirectory each)");
  node_cmd->add_flag("--dev", node.dev,
                     "Development mode: self-signed identities and no CA; anyone can join and register any user");
  node_cmd->add_option("--listen", node.listen, "Overlay SIP address (UDP and TCP)")->capture_default_str();
  node_cmd->add_option("--bootstrap", node.bootstrap, "A peer to join through (repeatable; none starts a new overlay)");
  node_cmd->add_option("--control", node.control, "Loopback HTTP control address")->capture_default_str();
  node_cmd->add_option("--data-dir", node.data_dir,
                       "Directory for the node's state (with --dev: its self-signed key and certificate)");
  node_cmd->add_option("--stabilize-interval", node.stabilize_interval_s, "Seconds between stabilization rounds")
      ->capture_default_str();
  node_cmd->add_option("--log-level", node.log_level, "debug, info, warn or error")->capture_default_str();
  node_cmd
      ->add_option("--t1-ms", node.t1_ms,
                   "RFC 3261 T1 for overlay transactions (T2 is at most 8*T1; unanswered requests end after 64*T1)")
      ->capture_default_str();
  node_cmd->add_option("--hop-timeout-ms", node.hop_timeout_ms,
                       "Route around a next hop silent this long (default: 4*T1 past the RFC 4320 100 Trying "
                       "deadline, 11*T1: 5.5 s; 0: only Timer F)");
  node_cmd->add_option("--successors", node.successors, "Successor list length")->capture_default_str();
  node_cmd->add_option("--replicas", node.replicas, "Copies of each record on successors")->capture_default_str();
  node_cmd->add_flag("--iterative", node.iterative, "Route this node's own requests iteratively (experiments)");
  node_cmd
      ->add_option("--overlay-transport", node.overlay_transport,
                   "Transport of overlay links: udp (signed datagrams), tcp (signed messages over connections) or "
                   "tls (connections with mutual certificate authentication, as RELOAD)")
      ->check(CLI::IsMember({"udp", "tcp", "tls"}))
      ->capture_default_str();
  node_cmd
      ->add_option("--ua-listen", node.ua_listen,
                   "Address (UDP and TCP) where local softphones register and call, or off")
      ->capture_default_str();
  node_cmd->add_option("--min-expires", node.min_expires, "Shortest registration accepted (shorter: 423)")
      ->capture_default_str();
  node_cmd->add_option("--max-expires", node.max_expires, "Longest registration kept (longer ones are shortened)")
      ->capture_default_str();
  node_cmd
      ->add_option("--entry-lifetime", node.entry_lifetime_s,
                   "Seconds a registration's overlay entry lives (stored again at 80 % while registered)")
      ->capture_default_str();
  node_cmd->add_option("--max-bindings", node.max_bindings, "Contacts per user at this node")->capture_default_str();
  node_cmd->add_option("--max-users", node.max_users, "Users registered at this node")->capture_default_str();
  node_cmd->add_option("--max-calls", node.max_calls, "Requests proxied at once (beyond: 503)")->capture_default_str();
  node_cmd->add_flag("--ua-digest", node.ua_digest,
                     "Phones log in with digest authentication (SHA-256 or MD5) even on loopback; off loopback "
                     "they always do");
  node_cmd
      ->add_option("--ua-digest-algorithms", node.ua_digest_algorithms,
                   "Digest algorithms offered to phones, in order (SHA-256 first as RFC 8760 says; MD5 first for "
                   "phones that read only the first challenge)")
      ->capture_default_str();
  node_cmd->add_option("--peer-rate", node.peer_rate, "Overlay requests per second from one peer address (beyond: 503)")
      ->capture_default_str();
  node_cmd->add_option("--peer-burst", node.peer_burst, "Overlay requests one peer may send at once")
      ->capture_default_str();
  node_cmd->add_option("--max-value-bytes", node.max_value_bytes, "Largest record value stored (beyond: 413)")
      ->capture_default_str();
  node_cmd
      ->add_option("--max-records-per-owner", node.max_records_per_owner,
                   "Records one owner may keep at this node (beyond: 413)")
      ->capture_default_str();
  node_cmd
      ->add_option("--role", node.role,
                   "auto: ask the bootstrap peers where they see this node, join the ring when public, be a client "
                   "(flows to relay peers, no routing, no storage) behind a NAT; peer; client")
      ->capture_default_str();
  node_cmd->add_flag_callback(
      "--client", [&node] { node.role = "client"; }, "The same as --role client");
  node_cmd
      ->add_option("--relay-max-clients", node.relay_max_clients,
                   "Clients this node relays for when it is a peer (beyond: 503 with Retry-After); 0: none")
      ->capture_default_str();
  node_cmd
      ->add_option("--ice", node.ice,
                   "on: a node behind a cone NAT joins the ring, reached over ICE links (libnice) that Attaches "
                   "set up, and every peer answers Attaches; off: no links (a NATed node is a client)")
      ->capture_default_str();
  node_cmd->add_option("--turn", node.turn,
                       "A TURN server for relayed ICE candidates: turn:HOST:PORT, or turn:HOST:PORT?transport=tcp "
                       "where UDP is blocked (HOST an IP address); needs --turn-user and --turn-password-file");
  node_cmd->add_option("--turn-user", node.turn_user, "The TURN server's user name (long-term credentials)");
  node_cmd->add_option("--turn-password-file", node.turn_password_file,
                       "A file whose first line is the TURN password (never logged)");
  node_cmd->add_option("--turn-secret-file", node.turn_secret_file,
                       "A file whose first line is the TURN server's REST secret (coturn --use-auth-secret "
                       "--static-auth-secret); instead of --turn-user and --turn-password-file");
  node_cmd
      ->add_option("--turn-service", node.turn_service,
                   "on: announce --turn to the overlay while this node is a public peer, and hand out "
                   "credentials for it (RFC 6940 sec. 9, TURN-SERVICE); needs --turn-secret-file. Nodes "
                   "without --turn find such a server in the overlay by themselves")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  node_cmd
      ->add_option("--turn-density", node.turn_density,
                   "Entries a --turn-service node stores (RFC 6940 sec. 9, turn-density): about 1 / the share "
                   "of peers that announce a TURN server")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  node_cmd
      ->add_option("--nat-check-interval", node.nat_check_interval_s,
                   "Seconds between asking two peers where they see this node (STUN) to tell public, cone, "
                   "symmetric or UDP-blocked; 0: never ask")
      ->capture_default_str();

  p2psip::tools::ControlOptions ctl;
  auto add_control = [&](CLI::App* cmd) {
    cmd->add_option("--control", ctl.control, "The node's control address")->capture_default_str();
    cmd->add_flag("--json", ctl.json, "Print the node's JSON answer");
    cmd->add_option("--timeout", ctl.timeout_s, "Seconds to wait for the node")->capture_default_str();
  };
  auto* status_cmd = app.add_subcommand("status", "Show a node's ring position, neighbours, records and counters");
  add_control(status_cmd);
  std::string key;
  std::string value;
  unsigned lifetime = 3600;
  auto* put_cmd = app.add_subcommand("put", "Store KEY=VALUE in the overlay through a node");
  add_control(put_cmd);
  put_cmd->add_option("key", key, "Key")->required();
  put_cmd->add_option("value", value, "Value")->required();
  put_cmd->add_option("--lifetime", lifetime, "Seconds the record lives")->capture_default_str();
  auto* get_cmd = app.add_subcommand("get", "Fetch KEY from the overlay through a node (exit 1 when missing)");
  add_control(get_cmd);
  get_cmd->add_option("key", key, "Key")->required();
  auto* lookup_cmd = app.add_subcommand("lookup", "Find the node responsible for KEY and the hops it took");
  add_control(lookup_cmd);
  lookup_cmd->add_option("key", key, "Key")->required();
  auto* locate_cmd = app.add_subcommand(
      "locate", "Show the nodes through which a user (sip:user@OVERLAY) is registered (exit 1 when nowhere)");
  add_control(locate_cmd);
  locate_cmd->add_option("aor", key, "The user's address of record, e.g. sip:alice@p2psip.local")->required();

  std::vector<std::string> controls;
  bool quiet = false;
  auto* ring_cmd =
      app.add_subcommand("ring-check", "Check that the given nodes form a correct ring (by their /status)");
  ring_cmd->add_option("controls", controls, "Control addresses of the nodes")->required();
  ring_cmd->add_flag("--quiet", quiet, "Print only nodes with problems and the verdict");
  ring_cmd->add_option("--timeout", ctl.timeout_s, "Seconds to wait for each node")->capture_default_str();

  p2psip::tools::SimOptions simo;
  auto* sim_cmd = app.add_subcommand(
      "sim", "Simulate an overlay of real node cores on a modelled network (discrete events, virtual time)");
  sim_cmd->footer(
      "SIGINT or SIGTERM (Ctrl-C, `timeout -s INT`) stops a run where it is and still writes every output for the "
      "simulated time reached: summary.json then says \"stopped_early\": true and \"simulated_s\", and the exit "
      "status is 128 + the signal's number. Further signals are ignored while the outputs are written (SIGKILL ends "
      "it at once). SIGUSR1 (`kill -USR1 PID`) prints one status line to stderr and the run goes on.");
  sim_cmd->add_option("scenario", simo.scenario_file, "Scenario file (TOML; see docs/SIMULATION.md)");
  sim_cmd->add_option("--nodes", simo.nodes, "Initial population (overrides the scenario)");
  sim_cmd->add_option("--duration", simo.duration_s, "Simulated seconds (overrides the scenario)");
  sim_cmd->add_option("--seed", simo.seed, "Random seed: the same seed and scenario give the same run");
  sim_cmd->add_option("--lookups-per-s", simo.lookups_per_s,
                      "Lookups per second in the whole overlay (replaces the scenario's lookup rates)");
  sim_cmd->add_option("--lookups-per-node-per-s", simo.lookups_per_node_per_s,
                      "Lookups per second by each joined node (replaces the scenario's lookup rates)");
  sim_cmd->add_option("--join-rate", simo.join_rate, "Initial nodes joining per simulated second");
  sim_cmd->add_option("--set", simo.set, "Override any scenario key: SECTION.KEY=VALUE (repeatable)");
  sim_cmd->add_option("--trace", simo.trace, "Print the log of these nodes (creation index; repeatable)");
  sim_cmd->add_option("--out", simo.out, "Output directory")->capture_default_str();
  sim_cmd->add_flag("--quiet", simo.quiet, "No progress bar");
  bool no_plots = false;
  sim_cmd->add_flag("--no-plots", no_plots, "Do not run gnuplot");
  bool no_huge_pages = false;
  sim_cmd->add_flag("--no-huge-pages", no_huge_pages,
                    "Do not ask glibc for transparent huge pages (it is asked by starting again with "
                    "GLIBC_TUNABLES=glibc.malloc.hugetlb=1 unless GLIBC_TUNABLES is set)");

  auto* ca_cmd =
      app.add_subcommand("ca", "The overlay's certificate authority: create its root, enroll nodes and users");
  ca_cmd->require_subcommand(1);
  p2psip::tools::CaInitOptions ca_init;
  auto* ca_init_cmd =
      ca_cmd->add_subcommand("init", "Create an overlay root (ca.key, ca.crt, issued.tsv) in a directory");
  ca_init_cmd->add_option("--overlay", ca_init.overlay, "The overlay's name, e.g. p2psip.example")->required();
  ca_init_cmd->add_option("--out", ca_init.out, "Directory for the CA (must not hold one)")->required();
  ca_init_cmd->add_option("--days", ca_init.days, "Days the root is valid")->capture_default_str();
  p2psip::tools::CaIssueOptions ca_issue;
  auto* ca_issue_cmd = ca_cmd->add_subcommand(
      "issue", "Issue a node or user certificate, from a request or with a fresh key; one key per user name");
  ca_issue_cmd->add_option("--ca", ca_issue.ca, "The CA's directory (from ca init)")->required();
  ca_issue_cmd->add_option("--csr", ca_issue.csr, "A request made by 'p2psip identity new' (else a key is made here)");
  ca_issue_cmd->add_flag("--node", ca_issue.node, "A node certificate (its Node-ID is its key's digest)");
  ca_issue_cmd->add_option("--user", ca_issue.user, "A user certificate for sip:USER@OVERLAY");
  ca_issue_cmd->add_option("--out", ca_issue.out, "Directory for cert.pem, ca.crt (and key.pem)")->required();
  ca_issue_cmd->add_option("--days", ca_issue.days, "Days the certificate is valid")->capture_default_str();
  ca_issue_cmd
      ->add_option("--count", ca_issue.count,
                   "Issue this many: users USER1..USERn (or nodes node1..), each in OUT/<name>/ with a key made here")
      ->capture_default_str();

  auto* id_cmd = app.add_subcommand("identity", "A node's or user's own identity: make a key and request, show one");
  id_cmd->require_subcommand(1);
  p2psip::tools::IdentityNewOptions id_new;
  auto* id_new_cmd = id_cmd->add_subcommand("new", "Make a key and a certificate request for the overlay's CA");
  id_new_cmd->add_option("--overlay", id_new.overlay, "The overlay's name")->required();
  id_new_cmd->add_flag("--node", id_new.node, "A node identity");
  id_new_cmd->add_option("--user", id_new.user, "A user identity for sip:USER@OVERLAY");
  id_new_cmd->add_option("--out", id_new.out, "Directory for key.pem and request.csr")->required();
  id_new_cmd->add_flag("--self-signed", id_new.self_signed,
                       "Development mode: a self-signed node certificate instead of a request (no CA)");
  id_new_cmd->add_option("--days", id_new.days, "Days a self-signed certificate is valid")->capture_default_str();
  p2psip::tools::IdentityPasswordOptions id_pw;
  auto* id_pw_cmd = id_cmd->add_subcommand(
      "password", "Set the password a user's phones log in with (digest authentication; kept as HA1 values only)");
  id_pw_cmd->add_option("dir", id_pw.dir, "The user's identity directory (holding cert.pem)")->required();
  id_pw_cmd->add_option("--password-file", id_pw.password_file,
                        "A file whose first line is the password (default: standard input)");
  p2psip::tools::IdentityShowOptions id_show;
  auto* id_show_cmd = id_cmd->add_subcommand("show", "Print what a certificate says, and check it against a root");
  id_show_cmd->add_option("path", id_show.path, "A certificate, or a directory holding cert.pem")->required();
  id_show_cmd->add_option("--trust", id_show.trust, "The overlay root (ca.crt) to check it against, now");

  CLI11_PARSE(app, argc, argv);
  if (ca_init_cmd->parsed()) return p2psip::tools::ca_init(ca_init);
  if (ca_issue_cmd->parsed()) return p2psip::tools::ca_issue(ca_issue);
  if (id_new_cmd->parsed()) return p2psip::tools::identity_new(id_new);
  if (id_show_cmd->parsed()) return p2psip::tools::identity_show(id_show);
  if (id_pw_cmd->parsed()) return p2psip::tools::identity_password(id_pw);
  if (sim_cmd->parsed()) {
    simo.plots = !no_plots;
    simo.huge_pages = !no_huge_pages;
    simo.argv = argv;
    return p2psip::tools::run_sim(simo);
  }
  if (ring_cmd->parsed()) return p2psip::tools::ring_check(ctl, controls, quiet);
  if (node_cmd->parsed()) {
    if (!node_config.empty()) {
      std::set<std::string> given;
      for (const auto* opt : node_cmd->get_options()) {
        if (opt->count() > 0 && !opt->get_lnames().empty()) given.insert(opt->get_lnames().front());
      }
      std::string error;
      if (!p2psip::tools::apply_node_config(node_config, given, node, error)) {
        std::fprintf(stderr, "p2psip node: --config %s\n", error.c_str());
        return 2;
      }
    }
    return p2psip::tools::run_node(node);
  }
  if (status_cmd->parsed()) return p2psip::tools::control_status(ctl);
  if (put_cmd->parsed()) return p2psip::tools::control_put(ctl, key, value, lifetime);
  if (get_cmd->parsed()) return p2psip::tools::control_get(ctl, key);
  if (lookup_cmd->parsed()) return p2psip::tools::control_lookup(ctl, key);
  if (locate_cmd->parsed()) return p2psip::tools::control_locate(ctl, key);
  echo.udp = !no_udp;
  echo.tcp = !no_tcp;
  if (echo_cmd->parsed()) return p2psip::tools::sip_echo(echo);
  if (check_cmd->parsed()) return p2psip::tools::sip_check(check);
  if (bench_cmd->parsed()) return p2psip::tools::sip_bench(bench);
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "p2psip: error: %s\n", e.what());
    return 1;
  }
}
