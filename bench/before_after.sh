#!/usr/bin/env bash
# Before and after a change, side by side on this machine: the same figures from two builds, run
# in turn (before, after, before, after, ...) so that the machine's drift hits both alike.
#  1. parser: build/bin/parser_bench's p2psip rows (parse, parse+serialize, parse+validate+serialize),
#     messages per second.
#  2. register: REGISTER/s at one node, as docs/PERFORMANCE.md's headline row measures it: USERS
#     known users (certificates from a CA) registered in turn, again and again, at a node enrolled
#     with that CA and those users (every entry signed with its user's key), alone in its overlay;
#     at each RATE for SECONDS, the registrations answered, failed and retransmitted, and the node's
#     CPU seconds per 1000 registrations. The node runs on CPU 0, sipp on CPU 1.
#  3. sim: SimGrid's Chord scenario (sim/scenarios/simgrid-chord.toml) at SIM_NODES nodes over TCP
#     links: wall seconds and messages per wall second.
#  4. callgrind: instructions per simulated message, the 300-node run earlier rows of
#     docs/PERFORMANCE.md use (the scenario with a finger every round, 30 lookups/s, 300 simulated
#     seconds, TCP links) under valgrind --tool=callgrind (repeatable, whatever else the machine does).
# Usage: bench/before_after.sh --before BUILD_DIR --after BUILD_DIR [--rounds N] [--rates "R1 R2"]
#        [--seconds S] [--users N] [--sim-nodes N] [--only parser|register|sim|callgrind]...
# Each BUILD_DIR holds bin/p2psip and bin/parser_bench. Heavy (about 30 minutes with the defaults);
# keep it out of ctest. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
before="" after="" rounds=3 rates="8000 16000" seconds=10 users=20000 sim_nodes=10000 only=()
while (($#)); do
  case "$1" in
    --before) before="$2"; shift ;;
    --after) after="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --rates) rates="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --users) users="$2"; shift ;;
    --sim-nodes) sim_nodes="$2"; shift ;;
    --only) only+=("$2"); shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
  shift
done
[ -x "$before/bin/p2psip" ] && [ -x "$after/bin/p2psip" ] || { echo "need --before and --after build folders"; exit 2; }
wanted() { ((${#only[@]} == 0)) || [[ " ${only[*]} " == *" $1 "* ]]; }
work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; pkill -P $$ sipp 2>/dev/null || true; rm -rf "$work"' EXIT
on_server=() on_load=()
if [ "$(nproc)" -ge 2 ]; then on_server=(taskset -c 0); on_load=(taskset -c 1); fi
echo "# before: $before ($(git -C "$here" log -1 --format=%h 2>/dev/null || echo ?) is the after's tree)"
echo "# after:  $after"
echo "# machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo

if wanted parser; then
  echo "## parser: p2psip's rows of parser_bench (messages per second), $rounds runs each, in turn"
  echo
  echo "| build | run | parse | parse+serialize | parse+validate+serialize |"
  echo "|---|---:|---:|---:|---:|"
  for r in $(seq "$rounds"); do
    for b in before after; do
      dir=${!b}
      "$dir/bin/parser_bench" --benchmark_min_time=2 --benchmark_filter='^p2psip/' 2>/dev/null |
        sed 's/\x1b\[[0-9;]*m//g' >"$work/parser.txt"  # its reporter writes colours whatever it is told
      rate() { awk -v n="p2psip/$1" '$1 == n { sub(/\/s$/, "", $NF); print $NF }' "$work/parser.txt"; }
      echo "| $b | $r | $(rate parse) | $(rate parse+serialize) | $(rate parse+validate+serialize) |"
    done
  done
  echo
fi

if wanted register; then
  command -v sipp >/dev/null || { echo "sipp not installed (package sip-tester)"; exit 1; }
  hz=$(getconf CLK_TCK)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
  stat_col() {
    local header
    header=$(head -n 1 "$1")
    tail -n 1 "$1" | cut -d';' -f"$(echo "$header" | tr ';' '\n' | grep -n -x "$2" | cut -d: -f1)"
  }
  # The enrolled overlay: a CA, the node's identity, USERS user identities, and sipp's injection
  # file naming the same users (read in turn).
  "$after/bin/p2psip" ca init --overlay bench.test --out "$work/pki/ca" >/dev/null
  "$after/bin/p2psip" ca issue --ca "$work/pki/ca" --node --out "$work/pki/node" >/dev/null
  "$after/bin/p2psip" ca issue --ca "$work/pki/ca" --user k --count "$users" --out "$work/pki/users" >/dev/null
  { echo SEQUENTIAL; for k in $(seq "$users"); do echo "k$k;"; done; } >"$work/users.csv"
  echo "## REGISTER/s at one node: $users known users in turn for ${seconds} s at each rate (enrolled, every entry signed)"
  echo
  echo "| build | round | offered REGISTER/s | registered | failed | retransmissions | node CPU s per 1000 |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in $(seq "$rounds"); do
    for b in before after; do
      dir=${!b}
      for rate in $rates; do
        "${on_server[@]}" "$dir/bin/p2psip" node --identity "$work/pki/node" --trust "$work/pki/ca/ca.crt" \
          --users "$work/pki/users" --listen 127.0.0.1:25170 --control 127.0.0.1:25180 \
          --ua-listen 127.0.0.1:25160 --max-users 10000000 --log-level warn >"$work/server.log" 2>&1 &
        server_pid=$!
        # An enrolled node reads and checks every user's certificate before it answers.
        for _ in $(seq 600); do "$dir/bin/p2psip" status --control 127.0.0.1:25180 >/dev/null 2>&1 && break; sleep 0.1; done
        run="$work/reg-$b-$r-$rate"
        mkdir -p "$run"
        t0=$(cpu_ticks)
        (cd "$run" && timeout $((seconds * 4 + 30)) "${on_load[@]}" sipp -sf "$here/bench/sipp/register_users.xml" \
          -inf "$work/users.csv" -s bench.test -m $((rate * seconds)) -r "$rate" -l $((rate * 4)) \
          -timeout $((seconds * 3 + 20))s -buff_size 1048576 -nostdin -trace_stat -stf stats.csv -fd 1 \
          127.0.0.1:25160 >sipp.out 2>&1) || true
        t1=$(cpu_ticks)
        ok=$(stat_col "$run/stats.csv" 'SuccessfulCall(C)')
        failed=$(stat_col "$run/stats.csv" 'FailedCall(C)')
        retrans=$(stat_col "$run/stats.csv" 'Retransmissions(C)')
        cpu=$(awk -v ok="$ok" -v c=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.3f", (ok > 0 ? c / hz / ok * 1000 : 0) }')
        echo "| $b | $r | $rate | $ok | $failed | $retrans | $cpu |"
        stop_server
      done
    done
  done
  echo
fi

if wanted sim; then
  echo "## sim: SimGrid's Chord scenario at $sim_nodes nodes, TCP links"
  echo
  echo "| build | run | wall s | messages | messages/s (wall) | peak RSS MiB | lookups right |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  json() { sed -n "s/^  \"$2\": \([^,]*\),\{0,1\}$/\1/p" "$1/summary.json"; }
  for r in $(seq "$rounds"); do
    for b in before after; do
      dir=${!b}
      out="$work/sim-$b-$r"
      "$dir/bin/p2psip" sim "$here/sim/scenarios/simgrid-chord.toml" --nodes "$sim_nodes" \
        --join-rate "$((sim_nodes / 10 > 1000 ? 1000 : (sim_nodes / 10 > 100 ? sim_nodes / 10 : 100)))" \
        --set 'network.transport="tcp"' --quiet --no-plots --out "$out" >/dev/null
      awk -v b="$b" -v r="$r" -v w="$(json "$out" wall_s)" -v m="$(json "$out" messages)" \
        -v rss="$(json "$out" peak_rss_bytes)" -v s="$(json "$out" lookup_success_rate)" \
        'BEGIN { printf "| %s | %d | %.1f | %.2f M | %.0f | %.0f | %.2f %% |\n", b, r, w, m / 1e6, m / w, rss / 1048576, s * 100 }'
    done
  done
  echo
fi

if wanted callgrind; then
  command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
  echo "## callgrind: 300 nodes, 300 simulated seconds, a finger every round, 30 lookups/s, TCP (instructions are repeatable)"
  echo
  echo "| build | instructions | messages | instructions per message |"
  echo "|---|---:|---:|---:|"
  for b in before after; do
    dir=${!b}
    out="$work/cg-$b"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg-$b.out" "$dir/bin/p2psip" sim \
      "$here/sim/scenarios/simgrid-chord.toml" --set chord.finger_rounds=1 --nodes 300 --lookups-per-s 30 \
      --join-rate 100 --duration 300 --set 'network.transport="tcp"' --quiet --no-plots --no-huge-pages \
      --out "$out" >/dev/null 2>"$work/cg-$b.err"
    ir=$(sed -n 's/^summary: //p' "$work/cg-$b.out")
    msgs=$(sed -n 's/^  "messages": \([0-9]*\),$/\1/p' "$out/summary.json")
    awk -v b="$b" -v ir="$ir" -v m="$msgs" 'BEGIN { printf "| %s | %.4f G | %d | %.0f |\n", b, ir / 1e9, m, ir / m }'
  done
  echo
fi
