# The namespace lab: a small internet on one host, built from network namespaces, veth pairs, a
# bridge and nftables, for tests that need real NATs. Source this file from a bash script run as
# root, then:
#
#   lab_begin                      a scratch folder $WORK (the logs go there), then lab_init, and one
#                                  EXIT trap that removes both
#   lab_init                       the "internet": namespace $LAB-inet with bridge br0, 198.51.100.0/24
#   lab_public NAME OCTET          a public host NAME at 198.51.100.OCTET
#   lab_stun                       coturn's host at 198.51.100.2 and .3 (RFC 5780 needs two addresses)
#   lab_site NAME X TYPE           a NAT router $LAB-rX (WAN 198.51.100.(10+X), LAN 10.0.X.1/24) of TYPE
#                                  full-cone | addr-restricted | port-restricted | symmetric | udp-blocked
#                                  and a host NAME behind it at 10.0.X.2
#   lab_exec NAME CMD...           runs CMD inside host NAME's namespace
#   lab_spawn NAME LOG CMD...      starts CMD there in the background; its PID is remembered
#   lab_node NAME ADDR [BOOT...]   starts `$P2PSIP node` in host NAME at ADDR:5070 (control
#                                  127.0.0.1:8070 in its namespace, phones at $LAB_UA if set, e.g.
#                                  127.0.0.1:5060), joining through BOOT:5070
#   lab_ctl NAME CMD ARGS...       runs `$P2PSIP CMD ARGS` against NAME's node
#   lab_netem NAME MS              delays everything into and out of site NAME (its router's WAN, both
#                                  ways) by MS milliseconds with tc netem
#   lab_verify_nat NAME TYPE       checks the router's behaviour from the host with coturn's
#                                  turnutils_natdiscovery (needs lab_stun); fails on a mismatch
#   lab_cleanup                    kills what lab_spawn started and deletes every namespace (and so
#                                  every veth and nftables table in them); lab_init traps it on EXIT
#
# Names are unique per run ($LAB, from the PID), addresses come from the documentation range
# 198.51.100.0/24 and private ranges that exist only inside the lab's namespaces, and nothing is
# routed out of the lab: the bridge has no uplink.

LAB=${LAB:-nl$$}
LAB_TURN_USER=natlab
LAB_TURN_PASSWORD=natlab-turn-$$
LAB_NAMESPACES=()
LAB_PIDS=()
declare -A LAB_NS   # host name -> namespace
declare -A LAB_PID  # host name -> the PID of what lab_spawn last started there
declare -A LAB_WAN_NS LAB_PORT  # host name -> the namespace holding its "wan" link, and its bridge port

lab_die() {
  echo "natlab: $*" >&2
  exit 1
}

lab_ns_add() {
  local ns=$1
  ip netns add "$ns" || lab_die "cannot create namespace $ns"
  LAB_NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
}

lab_cleanup() {
  local pid ns
  for pid in "${LAB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${LAB_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for ns in "${LAB_NAMESPACES[@]}"; do
    # Anything still running in a namespace (a child of a spawned command) goes with it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  LAB_PIDS=()
  LAB_NAMESPACES=()
}

lab_init() {
  [ "$(id -u)" -eq 0 ] || lab_die "needs root (network namespaces)"
  command -v nft >/dev/null || lab_die "needs nft (package nftables)"
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
  lab_ns_add "$LAB-inet"
  ip -n "$LAB-inet" link add br0 type bridge
  ip -n "$LAB-inet" link set br0 up
}

lab_begin() {
  WORK=$(mktemp -d)
  LAB_LOGDIR=$WORK
  lab_init
  trap 'lab_cleanup; [ -n "${LAB_KEEP:-}" ] || rm -rf "$WORK"' EXIT
}

# lab_wire NS IFNAME PORTNAME: a veth from NS (named IFNAME there) to the bridge (PORTNAME there).
lab_wire() {
  local ns=$1 ifname=$2 port=$3
  ip link add "$ifname" netns "$ns" type veth peer name "$port" netns "$LAB-inet" ||
    lab_die "cannot wire $ns to the bridge"
  ip -n "$LAB-inet" link set "$port" master br0
  ip -n "$LAB-inet" link set "$port" up
  ip -n "$ns" link set "$ifname" up
}

lab_public() {
  local name=$1 octet=$2 ns="$LAB-$1"
  lab_ns_add "$ns"
  lab_wire "$ns" wan "p$octet"
  ip -n "$ns" addr add "198.51.100.$octet/24" dev wan
  # A default route to a gateway that is not there (198.51.100.1 answers no ARP): what is sent to
  # an address outside the lab (a private candidate of another site) goes nowhere and the sender
  # hears nothing, as on the internet. Without one it would get ENETUNREACH, and coturn closes a
  # whole allocation on that error.
  ip -n "$ns" route add default via 198.51.100.1 dev wan
  LAB_NS[$name]=$ns
  LAB_WAN_NS[$name]=$ns
  LAB_PORT[$name]="p$octet"
}

lab_stun() {
  command -v turnserver >/dev/null || lab_die "needs turnserver (package coturn)"
  lab_public stun 2
  ip -n "$LAB-stun" addr add 198.51.100.3/24 dev wan
  # RFC 5780 discovery needs both addresses; no TLS, no DTLS, no CLI, no config file. TURN allocations
  # take the long-term credentials $LAB_TURN_USER / $LAB_TURN_PASSWORD (Binding requests need none).
  lab_spawn stun "${LAB_LOGDIR:-/tmp}/$LAB-coturn.log" turnserver -n --listening-ip=198.51.100.2 \
    --listening-ip=198.51.100.3 --relay-ip=198.51.100.2 --listening-port=3478 --no-tls --no-dtls --no-cli \
    --log-file=stdout --simple-log ${LAB_COTURN_VERBOSE:-} --no-software-attribute --realm=natlab.test \
    --lt-cred-mech --user="$LAB_TURN_USER:$LAB_TURN_PASSWORD"
  local i
  for i in $(seq 1 50); do
    ip netns exec "$LAB-stun" ss -uln 2>/dev/null | grep -q '198.51.100.3:3478' && return 0
    sleep 0.1
  done
  lab_die "coturn did not start (see ${LAB_LOGDIR:-/tmp}/$LAB-coturn.log)"
}

# The router itself takes nothing new from outside. Without this, a datagram that reaches the WAN
# address before the inside host has sent to its source (one half of a simultaneous open) would be
# taken by the router's own stack: answered with ICMP port unreachable, and its conntrack entry
# confirmed, which makes the NAT pick another port for the host's own datagram to that source a
# moment later and breaks the endpoint-independent mapping that hole punching relies on (RFC 4787
# REQ-1; RFC 5128 §3.3). Dropped in the input hook, the entry is never confirmed.
lab_router_input() {
  cat <<E
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
E
}

# The rules of each NAT type (../shared/NAT-NOTES.md §4, RFC 4787's terms), for a router whose WAN
# address is $1 and whose one inside host is $2.
lab_nat_rules() {
  local type=$1 wan=$2 host=$3
  case $type in
    full-cone | addr-restricted)
      # Endpoint-independent mapping (port-preserving SNAT) and, for full cone, endpoint-independent
      # filtering: any UDP to the WAN address goes to the host at the same port.
      cat <<E
table ip natlab {
$(lab_router_input)
  chain pre {
    type nat hook prerouting priority dstnat;
    iifname "wan" ip daddr $wan meta l4proto udp dnat to $host
  }
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "wan" snat to $wan
  }
E
      if [ "$type" = full-cone ]; then
        cat <<E
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" accept
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto udp accept
  }
}
E
      else
        # Address-dependent filtering: inbound only from addresses the host has sent to.
        cat <<E
  set seen {
    type ipv4_addr
    flags dynamic,timeout
    timeout 300s
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" update @seen { ip daddr } accept
    iifname "wan" ct state established,related accept
    iifname "wan" ip saddr @seen accept
  }
}
E
      fi
      ;;
    port-restricted | symmetric | udp-blocked)
      # Linux's own NAT: endpoint-independent mapping that keeps the port, and conntrack admits only
      # the exact reply tuple (address- and port-dependent filtering). Symmetric: a random port per
      # new destination (address- and port-dependent mapping). UDP-blocked: no UDP out at all.
      local masq=masquerade block=""
      [ "$type" = symmetric ] && masq="masquerade random"
      [ "$type" = udp-blocked ] && block='    iifname "lan" meta l4proto udp drop'
      cat <<E
table ip natlab {
$(lab_router_input)
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "wan" $masq
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
$block
    iifname "lan" accept
    iifname "wan" ct state established,related accept
  }
}
E
      ;;
    *) lab_die "unknown NAT type $type" ;;
  esac
}

lab_site() {
  local name=$1 x=$2 type=$3
  local router="$LAB-r$x" ns="$LAB-$name" wan="198.51.100.$((10 + x))" host="10.0.$x.2"
  lab_ns_add "$router"
  lab_ns_add "$ns"
  lab_wire "$router" wan "r$x"
  ip -n "$router" addr add "$wan/24" dev wan
  ip link add lan netns "$router" type veth peer name eth0 netns "$ns" || lab_die "cannot wire site $x"
  ip -n "$router" addr add "10.0.$x.1/24" dev lan
  ip -n "$router" link set lan up
  ip -n "$ns" addr add "$host/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "10.0.$x.1"
  ip netns exec "$router" sysctl -qw net.ipv4.ip_forward=1
  lab_nat_rules "$type" "$wan" "$host" | ip netns exec "$router" nft -f - || lab_die "nft rules for $type refused"
  LAB_NS[$name]=$ns
  LAB_WAN_NS[$name]=$router
  LAB_PORT[$name]="r$x"
}

lab_netem() {
  local name=$1 ms=$2
  tc -n "${LAB_WAN_NS[$name]}" qdisc add dev wan root netem delay "${ms}ms" || lab_die "netem refused (module sch_netem?)"
  tc -n "$LAB-inet" qdisc add dev "${LAB_PORT[$name]}" root netem delay "${ms}ms" || lab_die "netem refused"
}

lab_exec() {
  local name=$1
  shift
  ip netns exec "${LAB_NS[$name]}" "$@"
}

lab_spawn() {
  local name=$1 log=$2
  shift 2
  ip netns exec "${LAB_NS[$name]}" "$@" >"$log" 2>&1 &
  LAB_PIDS+=($!)
  LAB_PID[$name]=$!
}

lab_node() {
  local name=$1 addr=$2
  shift 2
  local boot=()
  for b in "$@"; do boot+=(--bootstrap "$b:5070"); done
  lab_spawn "$name" "${LAB_LOGDIR:-/tmp}/$name.log" "${P2PSIP:?}" node --dev --listen "$addr:5070" \
    --control 127.0.0.1:8070 --ua-listen "${LAB_UA:-off}" --stabilize-interval 1 --overlay natlab ${LAB_NODE_ARGS:-} \
    "${boot[@]}"
}

lab_ctl() {
  local name=$1 cmd=$2
  shift 2
  lab_exec "$name" "${P2PSIP:?}" "$cmd" --control 127.0.0.1:8070 --timeout "${LAB_CTL_TIMEOUT:-5}" "$@"
}

# What turnutils_natdiscovery must find behind each type: its mapping and filtering lines.
lab_verify_nat() {
  local name=$1 type=$2 out mapping filtering
  # Filtering first: the mapping test sends to coturn's second address, which an address-restricted
  # NAT would then let in and so look endpoint-independent.
  out=$(lab_exec "$name" timeout 60 turnutils_natdiscovery -f 198.51.100.2 2>&1) || true
  out+=$'\n'$(lab_exec "$name" timeout 60 turnutils_natdiscovery -m 198.51.100.2 2>&1) || true
  case $type in
    full-cone) mapping="Endpoint Independent Mapping" filtering="Endpoint Independent Filtering" ;;
    addr-restricted) mapping="Endpoint Independent Mapping" filtering="Address Dependent Filtering" ;;
    port-restricted) mapping="Endpoint Independent Mapping" filtering="Address and Port Dependent Filtering" ;;
    symmetric) mapping="Address and Port Dependent Mapping" filtering="Address and Port Dependent Filtering" ;;
    udp-blocked)
      if echo "$out" | grep -q "Independent Mapping\|Dependent Mapping"; then
        echo "natlab: $name ($type): natdiscovery got through:" >&2
        echo "$out" >&2
        return 1
      fi
      return 0
      ;;
  esac
  if ! echo "$out" | grep -q "$mapping" || ! echo "$out" | grep -q "$filtering"; then
    echo "natlab: $name is not a $type NAT ($mapping, $filtering expected); natdiscovery said:" >&2
    echo "$out" >&2
    return 1
  fi
}
