#!/usr/bin/env bash
# Reproduces two results of the Chord paper (Stoica et al., SIGCOMM 2001) with `p2psip sim`:
#  1. path length in a stable ring is about 1/2 log2 N;
#  2. when half of the nodes fail at once, successor lists of 2 log2 N keep lookups succeeding
#     while paths grow longer.
# Usage: bench/chord_paper.sh [--check] [--sizes "100 1000 10000 100000"] [--failure-sizes "1000 10000"]
#                             [--out DIR] [--p2psip PATH] [--set SECTION.KEY=VALUE]...
# --set passes a scenario override to every run (e.g. --set 'network.transport="tcp"').
# Writes DIR/chord_paper.md (tables), DIR/path_length.png and DIR/failure.png (with gnuplot).
# --check exits 1 unless every mean path is within 0.3 of 1/2 log2 N, every stable-ring lookup
# succeeds (at least 99%), and after the failure at least 95% still do while paths lengthen.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
p2psip="$here/build/bin/p2psip"
sizes="100 1000 10000 100000"
failure_sizes="1000 10000"
out="chord-paper-out"
check=0
sets=()
while (($#)); do
  case "$1" in
    --check) check=1 ;;
    --sizes) sizes="$2"; shift ;;
    --failure-sizes) failure_sizes="$2"; shift ;;
    --out) out="$2"; shift ;;
    --p2psip) p2psip="$2"; shift ;;
    --set) sets+=(--set "$2"); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "chord_paper.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
json() { sed -n "s/^  \"$2\": \([^,]*\),\{0,1\}$/\1/p" "$1/summary.json"; }
failed=0

# ---- 1. path length ---------------------------------------------------------------------------
table="$out/path_length.csv"
echo "nodes,half_log2_n,path_mean,difference,hops_mean,hops_p99,success,wall_s,peak_rss_mib" > "$table"
for n in $sizes; do
  dir="$out/path-$n"
  rate=$(( n / 100 > 20 ? n / 100 : 20 ))
  "$p2psip" sim "$here/sim/scenarios/chord-paper-path.toml" --nodes "$n" --join-rate "$rate" \
    "${sets[@]}" --out "$dir" --quiet --no-plots > /dev/null
  # The paper counts the peers a lookup visits up to the key's predecessor, which answers with its
  # successor. Our recursive lookup takes one more overlay hop, to the responsible peer itself.
  path=$(awk -F, 'NR > 1 { n += $2; p += ($1 > 0 ? $1 - 1 : 0) * $2 } END { printf "%.3f", p / n }' "$dir/hops.csv")
  half=$(awk -v n="$n" 'BEGIN { printf "%.3f", 0.5 * log(n) / log(2) }')
  diff=$(awk -v a="$path" -v b="$half" 'BEGIN { printf "%+.3f", a - b }')
  success=$(json "$dir" lookup_success_rate)
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$n" "$half" "$path" "$diff" "$(json "$dir" hops_mean)" \
    "$(json "$dir" hops_p99)" "$success" "$(json "$dir" wall_s)" \
    "$(awk -v b="$(json "$dir" peak_rss_bytes)" 'BEGIN { printf "%.0f", b / 1048576 }')" >> "$table"
  if ((check)); then
    awk -v d="$diff" -v s="$success" 'BEGIN { exit !((d < 0 ? -d : d) <= 0.3 && s >= 0.99) }' || {
      echo "FAIL: $n nodes: path $path vs 1/2 log2 N = $half (difference $diff), success $success" >&2
      failed=1
    }
  fi
done

# ---- 2. half of the nodes fail at once ------------------------------------------------------------
ftable="$out/failure.csv"
echo "nodes,successors,success_before,success_after_failure,success_recovered,hops_before,hops_after_failure,hops_recovered" > "$ftable"
for n in $failure_sizes; do
  dir="$out/failure-$n"
  succ=$(awk -v n="$n" 'BEGIN { printf "%d", 2 * log(n) / log(2) + 0.999 }')
  rate=$(( n / 100 > 20 ? n / 100 : 20 ))
  "$p2psip" sim "$here/sim/scenarios/chord-paper-failure.toml" --nodes "$n" --join-rate "$rate" \
    "${sets[@]}" --set "chord.successors=$succ" --out "$dir" --quiet --no-plots > /dev/null
  # Windows of timeseries.csv (t_s, ..., lookups=4, lookups_ok=5, ..., hops_mean=7): before the
  # failure at 700 s, the two minutes after it, and the rest.
  window() {
    awk -F, -v from="$1" -v to="$2" 'NR > 1 && $1 > from && $1 <= to && $4 > 0 {
      l += $4; ok += $5; h += $7 * $5 } END { printf "%.4f,%.2f", (l ? ok / l : 0), (ok ? h / ok : 0) }' \
      "$dir/timeseries.csv"
  }
  IFS=, read -r s0 h0 <<< "$(window 500 700)"
  IFS=, read -r s1 h1 <<< "$(window 700 820)"
  IFS=, read -r s2 h2 <<< "$(window 820 1000)"
  echo "$n,$succ,$s0,$s1,$s2,$h0,$h1,$h2" >> "$ftable"
  if ((check)); then
    awk -v s="$s1" -v a="$h0" -v b="$h1" 'BEGIN { exit !(s >= 0.95 && b > a) }' || {
      echo "FAIL: $n nodes, half failed: success $s1 after the failure (want >= 0.95), hops $h0 -> $h1" >&2
      failed=1
    }
  fi
done

# ---- report --------------------------------------------------------------------------------------
{
  echo "| nodes N | 1/2 log2 N | mean path (paper's count) | difference | overlay hops mean | hops p99 | lookups right | wall s | peak RSS MiB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$table" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
  echo
  echo "| nodes N | successor list | lookups right before | in the 2 min after half fail | after | hops before | hops in the 2 min after | hops after |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$ftable" | awk -F, '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
} > "$out/chord_paper.md"
cat "$out/chord_paper.md"

if command -v gnuplot > /dev/null; then
  first_failure=$(set -- $failure_sizes; echo "${1:-}")
  gnuplot <<GP 2> "$out/gnuplot.log" || echo "chord_paper.sh: gnuplot failed, see $out/gnuplot.log" >&2
set terminal pngcairo size 800,500 font ",11"
set datafile separator ","
set grid
set key top left
set output "$out/path_length.png"
set title "Chord path length in a stable ring (p2psip sim, full SIP messages)"
set xlabel "nodes N"
set ylabel "mean lookup path"
set logscale x
set xrange [50:200000]
plot "$table" using 1:3 skip 1 with linespoints lw 2 pt 7 title "measured (peers visited up to the key's predecessor)", \
     "$table" using 1:5 skip 1 with linespoints lw 2 pt 5 title "measured overlay hops (to the responsible peer)", \
     0.5 * log(x) / log(2) with lines dt 2 lw 2 title "1/2 log2 N"
unset logscale x
set autoscale x
if ("$first_failure" ne "") {
  set output "$out/failure.png"
  set title "Half of $first_failure nodes fail at t = 700 s"
  set xlabel "simulated time (s)"
  set ylabel "lookups right"
  set yrange [0:1.05]
  set y2label "mean overlay hops"
  set y2tics
  set ytics nomirror
  set key bottom left
  plot "$out/failure-$first_failure/timeseries.csv" using 1:6 skip 1 with linespoints lw 2 title "lookups right", \
       "" using 1:7 skip 1 axes x1y2 with linespoints lw 2 title "mean hops"
}
GP
fi
exit "$failed"
