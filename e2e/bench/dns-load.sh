#!/usr/bin/env bash
# DNS load benchmark: hedgerow with every list in ../shared/lists loaded, the
# query mix of ../shared/lists/querymix, an upstream that answers at once,
# and, interleaved in the same run, the same load against a bare miekg/dns
# server answering a fixed record (the ceiling for a Go resolver here).
# Loopback only; every run is bounded. Usage: e2e/bench/dns-load.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
LISTS=${HEDGEROW_LISTS:-../shared/lists}
command -v dnsperf >/dev/null || { echo "dnsperf not installed (apt-get install dnsperf)"; exit 1; }
[ -f "$LISTS/MANIFEST.tsv" ] || { echo "$LISTS not found"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/hedgerow" ./cmd/hedgerow
go build -o "$work/fixeddns" ./e2e/bench/fixeddns
H="$work/hedgerow --data $work/data"

echo "importing every list of $LISTS ..."
start=$(date +%s.%N)
$H import "$LISTS/ut1" --feed ut1 --reason bench >/dev/null
tail -n +2 "$LISTS/MANIFEST.tsv" | grep -v '^ut1/' | while IFS=$'\t' read -r path src fmt scat cat rest; do
  case "$path" in *vaping*) cat=drugs;; *scam*|*fake*) cat=malware;; *nosafesearch*) cat=circumvention;; esac
  $H import "$LISTS/$path" --feed "$(basename "${path%%.*}")-$src" --category "$cat" --reason bench >/dev/null
done
echo "import_s=$(echo "$(date +%s.%N) - $start" | bc)"

zcat "$LISTS/querymix/names.txt.gz" | awk '{print $1, "A"}' > "$work/queries.txt"

"$work/fixeddns" -addr 127.0.0.1:5301 & pids+=($!)   # hedgerow's instant upstream
"$work/fixeddns" -addr 127.0.0.1:5300 & pids+=($!)   # the ceiling
cat > "$work/hedgerow.yaml" <<YAML
dns:
  listen: ["127.0.0.1:5353"]
  upstreams: ["127.0.0.1:5301"]
  rate_limit: 0
admin: 127.0.0.1:9154
log:
  level: warn
YAML
start=$(date +%s.%N)
$H serve --config "$work/hedgerow.yaml" & pids+=($!)
hpid=$!
for _ in $(seq 1 200); do
  if dig @127.0.0.1 -p 5353 +time=1 +tries=1 pornhub.com 2>/dev/null | grep -q NXDOMAIN; then break; fi
  sleep 0.05
done
echo "lists_live_s=$(echo "$(date +%s.%N) - $start" | bc)"

# The reference: Unbound (Debian) with the same lists as local zones,
# forwarding the rest to the same instant upstream.
unbound_bin=$(command -v unbound || echo /usr/sbin/unbound)
if [ -x "$unbound_bin" ]; then
  go run ./e2e/bench/listnames -lists "$LISTS" > "$work/zones.conf" 2>/dev/null
  cat > "$work/unbound.conf" <<UB
server:
  interface: 127.0.0.1@5354
  port: 5354
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: ""
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  do-not-query-localhost: no
  num-threads: 2
  include: "$work/zones.conf"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@5301
UB
  "$unbound_bin" -d -c "$work/unbound.conf" >/dev/null 2>&1 & pids+=($!)
  upid=$!
  for _ in $(seq 1 600); do
    if dig @127.0.0.1 -p 5354 +time=1 +tries=1 pornhub.com 2>/dev/null | grep -q NXDOMAIN; then break; fi
    sleep 0.1
  done
fi

run() { # PORT -> "qps p50_ms p99_ms" via dnsperf, bounded by -l
  dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$SECONDS_PER_RUN" -c 10 -q 100 2>/dev/null |
    awk '/Queries per second/ {q=$4} /Average Latency/ {a=$4} END {printf "%s %s\n", q, a*1000}'
}
run 5353 >/dev/null   # warm the caches
[ -n "${upid:-}" ] && run 5354 >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  read -r bq ba < <(run 5300)
  read -r hq ha < <(run 5353)
  line="round=$r bare_qps=$bq bare_avg_ms=$ba hedgerow_qps=$hq hedgerow_avg_ms=$ha ratio=$(echo "scale=3; $hq / $bq" | bc)"
  if [ -n "${upid:-}" ]; then
    read -r uq ua < <(run 5354)
    line="$line unbound_qps=$uq unbound_ratio=$(echo "scale=3; $uq / $bq" | bc)"
  fi
  echo "$line"
done
# Fixed rate: per-query latency percentiles and server CPU per query.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
fixed() { # LABEL PORT PID
  local before after
  before=$(cpu_ticks "$3")
  dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries.txt" -l "$SECONDS_PER_RUN" -c 10 -Q 5000 -v 2>/dev/null > "$work/fixed.out" || true
  after=$(cpu_ticks "$3")
  awk '/^> /{print $NF*1000}' "$work/fixed.out" | sort -n > "$work/lat"
  local n q
  n=$(wc -l < "$work/lat")
  q=$(awk '/Queries completed/{print $3}' "$work/fixed.out")
  pct() { sed -n "$(( (n * $1 + 99) / 100 ))p" "$work/lat"; }
  echo "fixed_rate=5000 server=$1 p50_ms=$(pct 50) p99_ms=$(pct 99) cpu_us_per_query=$(echo "scale=2; ($after - $before) * 10000 / $q" | bc)"
}
fixed bare 5300 "${pids[1]}"
fixed hedgerow 5353 "$hpid"

echo "hedgerow_rss_mb=$(( $(awk '/VmRSS/ {print $2}' /proc/$hpid/status) / 1024 ))"
[ -n "${upid:-}" ] && echo "unbound_rss_mb=$(( $(awk '/VmRSS/ {print $2}' /proc/$upid/status) / 1024 ))"
curl -s http://127.0.0.1:9154/metrics | grep -E '^hedgerow_dns_queries_total' | sort | head -20
