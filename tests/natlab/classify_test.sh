#!/usr/bin/env bash
# Where a node stands (issue 24, "knowing where it stands"), in the namespace lab: two public nodes
# and one node behind each kind of NAT (full cone, address-restricted, port-restricted, symmetric,
# UDP-blocked), every NAT first checked with coturn's turnutils_natdiscovery. Each node asks its
# peers where they see it (STUN Binding on its overlay port) and must classify itself as RFC 4787
# predicts: public, cone (the three endpoint-independent mappings), symmetric, udp-blocked, with the
# reflexive address its router gives it. Bounded in time; the lab removes every namespace, process
# and nftables table it made on the way out, failure included.
set -euo pipefail
P2PSIP=${1:?usage: classify_test.sh PATH/TO/p2psip}
source "$(cd "$(dirname "$0")" && pwd)/natlab.sh"
lab_begin

SITES=("1 full-cone" "2 addr-restricted" "3 port-restricted" "4 symmetric" "5 udp-blocked")
lab_stun
lab_public p1 21
lab_public p2 22
for s in "${SITES[@]}"; do
  read -r x type <<<"$s"
  lab_site "h$x" "$x" "$type"
done
for s in "${SITES[@]}"; do
  read -r x type <<<"$s"
  lab_verify_nat "h$x" "$type" || exit 1
  echo "h$x: a $type NAT, as natdiscovery finds"
done

lab_node p1 198.51.100.21
lab_node p2 198.51.100.22 198.51.100.21
for s in "${SITES[@]}"; do
  read -r x type <<<"$s"
  lab_node "h$x" "10.0.$x.2" 198.51.100.21 198.51.100.22
done

# name -> "class reflexive" expected (reflexive "-": none; "IP:*": any port at that address).
declare -A WANT=(
  [p1]="public 198.51.100.21:5070" [p2]="public 198.51.100.22:5070"
  [h1]="cone 198.51.100.11:5070" [h2]="cone 198.51.100.12:5070" [h3]="cone 198.51.100.13:5070"
  [h4]="symmetric 198.51.100.14:*" [h5]="udp-blocked -"
)
verdict() {  # the node's class and reflexive address, once a check has ended ("" before)
  LAB_CTL_TIMEOUT=2 lab_ctl "$1" status --json 2>/dev/null | python3 -c '
import json, sys
n = json.load(sys.stdin)["nat"]
if n["checks"] > 0 and n["class"] != "unknown":
    print(n["class"], n["reflexive"] or "-")' 2>/dev/null || true
}
matches() {  # matches "class reflexive" "want"
  local got_class=${1%% *} got_addr=${1#* } want_class=${2%% *} want_addr=${2#* }
  [ "$got_class" = "$want_class" ] || return 1
  case $want_addr in
    *:\*) [ "${got_addr%:*}" = "${want_addr%:*}" ] ;;
    *) [ "$got_addr" = "$want_addr" ] ;;
  esac
}

# A UDP-blocked node's verdict waits for its STUN transactions to time out (39.5 s, RFC 8489).
deadline=$((SECONDS + 90))
declare -A DONE=()
while [ ${#DONE[@]} -lt ${#WANT[@]} ]; do
  for name in "${!WANT[@]}"; do
    [ -n "${DONE[$name]:-}" ] && continue
    got=$(verdict "$name")
    [ -z "$got" ] && continue
    if matches "$got" "${WANT[$name]}"; then
      DONE[$name]=1
      echo "$name: $got (after ${SECONDS}s)"
    elif [ "${got%% *}" != unknown ]; then
      echo "$name: classified itself '$got', expected '${WANT[$name]}'"
      lab_ctl "$name" status --json || true
      tail -n 20 "$WORK/$name.log"
      exit 1
    fi
  done
  if [ $SECONDS -ge $deadline ]; then
    for name in "${!WANT[@]}"; do
      [ -n "${DONE[$name]:-}" ] && continue
      echo "$name: no verdict within 90 s (expected '${WANT[$name]}'); its status and log:"
      lab_ctl "$name" status --json || true
      tail -n 20 "$WORK/$name.log"
    done
    exit 1
  fi
  sleep 1
done
# The text status says it too.
lab_ctl h3 status | grep -E '^nat +cone, seen at 198\.51\.100\.13:5070$' >/dev/null || {
  echo "h3's status does not show its class:"; lab_ctl h3 status; exit 1; }
echo "every node classified itself as its NAT predicts"
