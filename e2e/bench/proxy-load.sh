#!/usr/bin/env bash
# Proxy load benchmark: hedgerow's forward proxy with every list in
# ../shared/lists loaded, interleaved in ONE run (abab.sh, medians) with
#   goproxy  a bare elazarl/goproxy with a tuned transport and no handlers (the floor
#            for a goproxy-based proxy here: ../shared/bench/tools/gproxy),
#   squid    Debian's squid, no cache, no access log (the reference),
#   direct   wrk straight to the origin (the client's and origin's own ceiling).
# All of it on loopback; every run is bounded, and a watchdog ends the script.
#
#   1. plain HTTP keep-alive, max load: requests/s, p50/p99, server CPU per request
#      (http-load.sh under cpu-per-op.sh); floor hedgerow/goproxy rps >= 0.85
#   2. added latency at half load: p50/p99 with every connection paced so that the
#      offered rate is half of goproxy's measured max (wrk + a delay() script: the
#      shared hload has no fixed-rate mode); floor hedgerow p99 - goproxy p99 < 1 ms
#   3. CONNECT tunnels/s: new TCP conn + CONNECT + TLS handshake through the tunnel
#      + 1 GET (https-connect-load.sh); floor hedgerow/goproxy >= 0.9
#   4. RSS (proc-mem.sh) idle after start and after all the load, peak included
#
# Usage: e2e/bench/proxy-load.sh            (full run: 5 rounds, about 8.5 minutes)
#        QUICK=1 e2e/bench/proxy-load.sh    (smoke run: 1 round of 3 s runs)
# Env: SECS (seconds per run, 10), ROUNDS (interleaved rounds, 5), CONNS (wrk
#      keep-alive connections, 50), WORKERS (CONNECT workers, 20), MAX_SECS
#      (watchdog for the whole script, 900), HEDGEROW_BENCH (../shared/bench),
#      HEDGEROW_LISTS (../shared/lists), ports: ORIGIN_HTTP_PORT 8080,
#      ORIGIN_TLS_PORT 8443, GPROXY_PORT 8081, HPROXY_PORT 3130, SQUID_PORT 3129,
#      HDNS_PORT 5363, HADMIN_PORT 9163, UPDNS_PORT 5311. NO_SQUID=1 skips squid;
#      HEDGEROW_LOG_LEVEL (info; debug logs each failed upstream request); KEEP_LOGS=DIR
#      keeps the servers' logs and the raw lines.
# Needs: go, wrk, curl, bc, squid (installed with apt-get when missing).
set -euo pipefail

# --- internal mode: one paced wrk run, called back through abab.sh -------------
# proxy-load.sh __paced PROXY URL SECS CONNS RATE -> one key=value line like
# http-load.sh's. Each of CONNS keep-alive connections waits CONNS/RATE s
# between its requests (wrk's delay(); the wait is not part of the latency), so
# the offered load is RATE/s minus the latency itself: a paced closed loop.
if [ "${1:-}" = __paced ]; then
  PROXY=$2; URL=$3; S=$4; C=$5; RATE=$6
  hostport=$(echo "$URL" | sed -E 's#^[a-z]+://([^/]+).*#\1#')
  for hp in "$hostport" "$PROXY"; do
    case "$hp" in 127.*) ;; *) echo "refusing non-loopback target $hp" >&2; exit 2;; esac
  done
  [ "$S" -le 120 ] || S=120
  t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
  cat > "$t/paced.lua" <<'LUA'
wrk.path = os.getenv("TARGET_URL")
wrk.headers["Host"] = os.getenv("TARGET_HOST")
local period = tonumber(os.getenv("PERIOD_MS"))
local lo = math.floor(period)
local frac = period - lo
function delay()
  if math.random() < frac then return lo + 1 end
  return lo
end
LUA
  period=$(awk -v c="$C" -v r="$RATE" 'BEGIN{printf "%.3f", c*1000/r}')
  PERIOD_MS=$period TARGET_URL="$URL" TARGET_HOST="$hostport" timeout $((S+20)) \
    wrk -t1 -c"$C" -d"${S}s" --latency -s "$t/paced.lua" "http://$PROXY" > "$t/out" 2>&1 || true
  ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); printf "%.3f", v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); printf "%.3f", v} else if (v ~ /s$/) {sub(/s$/,"",v); printf "%.3f", v*1000} else print "?" }'; }
  rps=$(awk '/Requests\/sec/{printf "%.0f",$2}' "$t/out")
  p() { ms "$(awk -v q="$1%" '$1==q{print $2; exit}' "$t/out")"; }
  errs=$(awk '/Socket errors/{gsub(/,/,""); print $4+$6+$8+$10}' "$t/out")
  non2=$(awk '/Non-2xx/{print $NF}' "$t/out")
  echo "proxy=$PROXY mode=paced secs=$S conns=$C target_rps=$RATE period_ms=$period rps=${rps:-0} p50_ms=$(p 50) p90_ms=$(p 90) p99_ms=$(p 99) sock_errors=${errs:-0} non2xx=${non2:-0}"
  exit 0
fi

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/../.."
REPO=$(pwd)
B=$(cd "${HEDGEROW_BENCH:-../shared/bench}" && pwd)
LISTS=${HEDGEROW_LISTS:-../shared/lists}
if [ "${QUICK:-0}" = 1 ]; then
  SECS=${SECS:-3}; ROUNDS=${ROUNDS:-1}; MAX_SECS=${MAX_SECS:-420}
else
  SECS=${SECS:-10}; ROUNDS=${ROUNDS:-5}; MAX_SECS=${MAX_SECS:-900}
fi
CONNS=${CONNS:-50}; WORKERS=${WORKERS:-20}
ORIGIN_HTTP_PORT=${ORIGIN_HTTP_PORT:-8080}; ORIGIN_TLS_PORT=${ORIGIN_TLS_PORT:-8443}
GPROXY_PORT=${GPROXY_PORT:-8081}; HPROXY_PORT=${HPROXY_PORT:-3130}; SQUID_PORT=${SQUID_PORT:-3129}
HDNS_PORT=${HDNS_PORT:-5363}; HADMIN_PORT=${HADMIN_PORT:-9163}; UPDNS_PORT=${UPDNS_PORT:-5311}
U=http://127.0.0.1:$ORIGIN_HTTP_PORT/
UT=https://127.0.0.1:$ORIGIN_TLS_PORT/

[ -f "$LISTS/MANIFEST.tsv" ] || { echo "$LISTS not found (set HEDGEROW_LISTS)"; exit 1; }
[ -x "$B/abab.sh" ] || { echo "$B/abab.sh not found (set HEDGEROW_BENCH)"; exit 1; }

# --- tools -------------------------------------------------------------------
need=()
for t in wrk curl bc; do command -v "$t" >/dev/null || need+=("$t"); done
if [ "${NO_SQUID:-0}" != 1 ] && ! command -v squid >/dev/null && [ ! -x /usr/sbin/squid ]; then need+=(squid); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
    { timeout 300 apt-get update >/dev/null 2>&1 && timeout 300 apt-get install -y "${need[@]}" >/dev/null; } ||
    { echo "could not install ${need[*]}"; exit 1; }
fi
SQUID_BIN=$(command -v squid || echo /usr/sbin/squid)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for p in $ORIGIN_HTTP_PORT $ORIGIN_TLS_PORT $GPROXY_PORT $HPROXY_PORT $SQUID_PORT $HADMIN_PORT; do
  in_use "$p" && { echo "port $p is in use on this machine: pick another with the *_PORT variables"; exit 1; }
done
ss -Hlun "sport = :$HDNS_PORT" | grep -q . && { echo "UDP port $HDNS_PORT in use (HDNS_PORT)"; exit 1; }
ss -Hlun "sport = :$UPDNS_PORT" | grep -q . && { echo "UDP port $UPDNS_PORT in use (UPDNS_PORT)"; exit 1; }

# --- cleanup: every process started here, by its PID ---------------------------
work=$(mktemp -d)
chmod 711 "$work"   # squid drops to the proxy user and must reach $work/squid
pids=()
watchdog=""
cleanup() {
  set +e
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 1 30); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM
( sleep "$MAX_SECS"; echo "proxy-load.sh: watchdog: over ${MAX_SECS}s, stopping" >&2; kill -TERM $$ ) &
watchdog=$!

echo "== proxy-load.sh $(date -u +%FT%TZ) rounds=$ROUNDS secs=$SECS conns=$CONNS workers=$WORKERS"
echo "machine: $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); $(go version | cut -d' ' -f3); wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2);" \
  "squid $("$SQUID_BIN" -v 2>/dev/null | awk 'NR==1{print $NF}'); hedgerow $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$( [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null)" ] && echo +dirty)"

# --- build ---------------------------------------------------------------------
timeout 300 go build -o "$work/hedgerow" ./cmd/hedgerow
timeout 300 "$B/build-tools.sh" "$work/bin" >/dev/null
export HLOAD="$work/bin/hload"
H="$work/hedgerow --data $work/data"

# --- hedgerow's data: every list, loopback mapped to a group ---------------------
echo "importing every list of $LISTS ..."
start=$(date +%s.%N)
timeout 600 $H import "$LISTS/ut1" --feed ut1 --reason bench >/dev/null
tail -n +2 "$LISTS/MANIFEST.tsv" | grep -v '^ut1/' | while IFS=$'\t' read -r path src fmt scat cat rest; do
  case "$path" in *vaping*) cat=drugs;; *scam*|*fake*) cat=malware;; *nosafesearch*) cat=circumvention;; esac
  timeout 300 $H import "$LISTS/$path" --feed "$(basename "${path%%.*}")-$src" --category "$cat" --reason bench >/dev/null
done
import_s=$(echo "$(date +%s.%N) - $start" | bc)
$H clients add 127.0.0.0/8 ks3-ks4 --reason bench >/dev/null
echo "import_s=$import_s; $($H clients list | awk '$1=="127.0.0.0/8"{print "127.0.0.0/8 ->", $2}')"

# --- servers ---------------------------------------------------------------------
"$work/bin/origin" -http 127.0.0.1:$ORIGIN_HTTP_PORT -https 127.0.0.1:$ORIGIN_TLS_PORT 2>"$work/origin.log" & pids+=($!); OPID=$!
"$work/bin/limitdns" -addr 127.0.0.1:$UPDNS_PORT 2>"$work/limitdns.log" & pids+=($!)
"$work/bin/gproxy" -addr 127.0.0.1:$GPROXY_PORT 2>"$work/gproxy.log" & pids+=($!); GPID=$!

cat > "$work/hedgerow.yaml" <<YAML
proxy:
  connect_ports: [443, $ORIGIN_TLS_PORT]
dns:
  rate_limit: 0
log:
  level: ${HEDGEROW_LOG_LEVEL:-info}
YAML
$H serve --config "$work/hedgerow.yaml" --dns 127.0.0.1:$HDNS_PORT --admin 127.0.0.1:$HADMIN_PORT \
  --proxy 127.0.0.1:$HPROXY_PORT --proxy-allow-dest 127.0.0.0/8 --upstream 127.0.0.1:$UPDNS_PORT \
  >"$work/hedgerow.log" 2>&1 & pids+=($!); HPID=$!

SPID=""
if [ "${NO_SQUID:-0}" != 1 ]; then
  sq=$work/squid; mkdir -p "$sq"
  cat > "$sq/squid.conf" <<CONF
http_port 127.0.0.1:$SQUID_PORT
visible_hostname hedgerow-bench
pid_filename $sq/squid.pid
cache_effective_user proxy
cache_effective_group proxy
coredump_dir $sq
cache_log $sq/cache.log
access_log none
logfile_rotate 0
cache deny all
cache_mem 8 MB
pinger_enable off
max_filedescriptors 65536
shutdown_lifetime 1 seconds
via off
forwarded_for delete
# loopback only: no ICP/HTCP, its (unused: the origin is an IP literal) DNS client on 127.0.0.1
icp_port 0
htcp_port 0
digest_generation off
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
udp_outgoing_address 127.0.0.1
acl SSL_ports port 443 $ORIGIN_TLS_PORT
acl Safe_ports port 80 443 $ORIGIN_HTTP_PORT $ORIGIN_TLS_PORT
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost
http_access deny all
CONF
  chown -R proxy:proxy "$sq"
  if ! timeout 30 "$SQUID_BIN" -k parse -f "$sq/squid.conf" >"$work/squid-parse.log" 2>&1; then
    echo "squid config rejected:"; grep -iE 'error|fatal' "$work/squid-parse.log" | head; exit 1
  fi
  "$SQUID_BIN" -N -f "$sq/squid.conf" >"$work/squid.out" 2>&1 & pids+=($!); SPID=$!
fi

ready() { # LABEL PROXYPORT
  local r; r=$("$B/wait-ready.sh" http 127.0.0.1:$2 "$U" 120) || { echo "$1 not ready: $r"; return 1; }
  echo "$1 $r"
}
ready goproxy $GPROXY_PORT
ready hedgerow $HPROXY_PORT || { tail -20 "$work/hedgerow.log"; exit 1; }
[ -n "$SPID" ] && { ready squid $SQUID_PORT || { tail -20 "$sq/cache.log" "$work/squid.out"; exit 1; }; }

# Sanity: 200 through each proxy over HTTP and CONNECT, and hedgerow's lists live.
code() { curl -s -k -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }
labels=(goproxy hedgerow); ports=($GPROXY_PORT $HPROXY_PORT); procs=($GPID $HPID)
[ -n "$SPID" ] && { labels+=(squid); ports+=($SQUID_PORT); procs+=($SPID); }
for i in "${!labels[@]}"; do
  h=$(code -x "http://127.0.0.1:${ports[$i]}" "$U"); s=$(code -x "http://127.0.0.1:${ports[$i]}" "$UT")
  echo "check ${labels[$i]}: http=$h connect=$s"
  [ "$h" = 200 ] && [ "$s" = 200 ] || { echo "${labels[$i]} does not proxy the origin"; exit 1; }
done
echo "check hedgerow blocks a listed site: http://pornhub.com/ -> $(code -x "http://127.0.0.1:$HPROXY_PORT" http://pornhub.com/)"

mem_idle=$(for i in "${!labels[@]}"; do "$B/proc-mem.sh" "${procs[$i]}" "${labels[$i]}"; done)

alive() { # after each phase: did every proxy survive?
  for i in "${!labels[@]}"; do
    kill -0 "${procs[$i]}" 2>/dev/null || { echo "!! ${labels[$i]} (pid ${procs[$i]}) died"; dead+=("${labels[$i]}"); }
  done
}
dead=()

# Warm every path (connection pools, page cache) once; not measured.
for i in "${!labels[@]}"; do "$B/http-load.sh" "127.0.0.1:${ports[$i]}" "$U" 2 "$CONNS" >/dev/null; done
"$B/http-load.sh" direct "$U" 2 "$CONNS" >/dev/null
for i in "${!labels[@]}"; do "$B/https-connect-load.sh" "127.0.0.1:${ports[$i]}" "$UT" 2 "$WORKERS" >/dev/null; done

RAW=$work/raw.log
# hedgerow's own count of requests it could not forward, per measured step
uperr() { { curl -s -m 5 "http://127.0.0.1:$HADMIN_PORT/metrics" | awk '/^hedgerow_proxy_requests_total/ && /result="upstream_error"/ {s+=$NF} END{print s+0}'; } || echo 0; }
cpu() { echo "$B/cpu-per-op.sh $1"; }

# --- 1. plain HTTP keep-alive at max load -------------------------------------------
echo; echo "== 1. plain HTTP keep-alive, max load: wrk $CONNS conns, ${SECS}s x $ROUNDS rounds"
args=(goproxy "$(cpu $GPID) $B/http-load.sh 127.0.0.1:$GPROXY_PORT $U $SECS $CONNS"
      hedgerow "$(cpu $HPID) $B/http-load.sh 127.0.0.1:$HPROXY_PORT $U $SECS $CONNS")
[ -n "$SPID" ] && args+=(squid "$(cpu $SPID) $B/http-load.sh 127.0.0.1:$SQUID_PORT $U $SECS $CONNS")
args+=(direct "$(cpu $OPID) $B/http-load.sh direct $U $SECS $CONNS")
u0=$(uperr)
ABAB_LOG=$RAW "$B/abab.sh" "$ROUNDS" rps,p50_ms,p99_ms,cpu_us_per_op "${args[@]}" | tee "$work/t1.txt"
u1=$(uperr); u1b=$u1; alive

# --- 2. latency at half of goproxy's max -------------------------------------------
med() { { grep "^label=$2 " "$1" | grep -o " $3=[^( ]*" | head -1 | cut -d= -f2; } || true; }
g_rps=$(med "$work/t1.txt" goproxy rps)
half=$(awk -v r="${g_rps:-0}" 'BEGIN{printf "%d", r/2}')
echo; echo "== 2. latency at half load: paced at $half req/s (half goproxy's max), $CONNS conns, ${SECS}s x $ROUNDS rounds"
if [ "$half" -gt 0 ]; then
  args=(goproxy "$(cpu $GPID) $SELF __paced 127.0.0.1:$GPROXY_PORT $U $SECS $CONNS $half"
        hedgerow "$(cpu $HPID) $SELF __paced 127.0.0.1:$HPROXY_PORT $U $SECS $CONNS $half")
  u1b=$(uperr)
  ABAB_LOG=$RAW "$B/abab.sh" "$ROUNDS" p99_ms,p50_ms,rps,cpu_us_per_op "${args[@]}" | tee "$work/t2.txt"
else
  echo "skipped: no goproxy rps from step 1" | tee "$work/t2.txt"
fi
u2=$(uperr); alive

# --- 3. CONNECT tunnels per second -------------------------------------------------
echo; echo "== 3. CONNECT + TLS handshake + 1 GET per tunnel: $WORKERS workers, ${SECS}s x $ROUNDS rounds"
args=(goproxy "$(cpu $GPID) $B/https-connect-load.sh 127.0.0.1:$GPROXY_PORT $UT $SECS $WORKERS"
      hedgerow "$(cpu $HPID) $B/https-connect-load.sh 127.0.0.1:$HPROXY_PORT $UT $SECS $WORKERS")
[ -n "$SPID" ] && args+=(squid "$(cpu $SPID) $B/https-connect-load.sh 127.0.0.1:$SQUID_PORT $UT $SECS $WORKERS")
ABAB_LOG=$RAW "$B/abab.sh" "$ROUNDS" rps,p50_ms,p99_ms,cpu_us_per_op "${args[@]}" | tee "$work/t3.txt"
alive

# --- 4. memory -----------------------------------------------------------------------
mem_after=$(for i in "${!labels[@]}"; do kill -0 "${procs[$i]}" 2>/dev/null && "$B/proc-mem.sh" "${procs[$i]}" "${labels[$i]}"; done || true)

# --- summary ----------------------------------------------------------------------------
kv() { { echo "$1" | grep "label=$2 " | grep -o " $3=[^ ]*" | cut -d= -f2; } || true; }
errsum() { # MODE LABEL: failed requests summed over the raw lines of one step
  { grep " label=$2 " "$RAW" | grep " mode=$1 " || true; } |
    awk '{for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]=="sock_errors"||kv[1]=="non2xx"||kv[1]=="errors") s+=kv[2]}} END{print s+0}'
}
lasterr() { { grep " label=$2 " "$RAW" | grep " mode=$1 " | grep -o 'lasterr="[^"]\+"' | tail -1; } || true; }
floor() { # DESC VALUE OP LIMIT
  local ok; ok=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN{ if (v=="" || v=="nan") {print "n/a"; exit} if ((op==">=" && v+0>=l+0) || (op=="<" && v+0<l+0)) print "PASS"; else print "FAIL" }')
  printf '  [%s] %s = %s (floor %s %s)\n' "$ok" "$1" "${2:-n/a}" "$3" "$4"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || b+0==0) print "nan"; else printf "%.3f", a/b }'; }

{
echo
echo "================ proxy-load summary ================"
echo "run: rounds=$ROUNDS secs/run=$SECS http_conns=$CONNS connect_workers=$WORKERS; medians over interleaved rounds"
echo "hedgerow: every list of $LISTS (import ${import_s%.*}s), 127.0.0.0/8 -> ks3-ks4, no CA (tunnels only)"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cpus"
echo
echo "1. plain HTTP keep-alive, max load (wrk, $CONNS conns)"
printf '   %-9s %9s %8s %8s %12s %10s %7s\n' target rps p50_ms p99_ms cpu_us/req vs_goproxy errors
g=$(med "$work/t1.txt" goproxy rps)
for l in goproxy hedgerow ${SPID:+squid} direct; do
  r=$(med "$work/t1.txt" $l rps)
  printf '   %-9s %9s %8s %8s %12s %10s %7s\n' "$l" "$r" "$(med "$work/t1.txt" $l p50_ms)" "$(med "$work/t1.txt" $l p99_ms)" \
    "$(med "$work/t1.txt" $l cpu_us_per_op)" "$(ratio "$r" "$g")" "$(errsum http $l)"
done
echo "   (direct's cpu_us/req is the origin's own; the proxies' is the proxy process alone)"
echo "   hedgerow_proxy_requests_total{result=\"upstream_error\"} grew by $((u1-u0)) in this step, by $((u2-u1b)) in step 2"
echo
echo "2. latency at half load (paced: $half req/s offered, $CONNS conns)"
printf '   %-9s %9s %8s %8s %12s %7s\n' target rps p50_ms p99_ms cpu_us/req errors
for l in goproxy hedgerow; do
  printf '   %-9s %9s %8s %8s %12s %7s\n' "$l" "$(med "$work/t2.txt" $l rps)" "$(med "$work/t2.txt" $l p50_ms)" \
    "$(med "$work/t2.txt" $l p99_ms)" "$(med "$work/t2.txt" $l cpu_us_per_op)" "$(errsum paced $l)"
done
dp99=$(awk -v a="$(med "$work/t2.txt" hedgerow p99_ms)" -v b="$(med "$work/t2.txt" goproxy p99_ms)" 'BEGIN{ if (a==""||b=="") print "nan"; else printf "%.3f", a-b }')
dp50=$(awk -v a="$(med "$work/t2.txt" hedgerow p50_ms)" -v b="$(med "$work/t2.txt" goproxy p50_ms)" 'BEGIN{ if (a==""||b=="") print "nan"; else printf "%.3f", a-b }')
echo "   hedgerow - goproxy: p50 ${dp50} ms, p99 ${dp99} ms"
echo
echo "3. CONNECT tunnels/s (new conn + CONNECT + TLS handshake + 1 GET, $WORKERS workers)"
printf '   %-9s %9s %8s %8s %12s %10s %7s\n' target tunnels/s p50_ms p99_ms cpu_us/tun vs_goproxy errors
g3=$(med "$work/t3.txt" goproxy rps)
for l in goproxy hedgerow ${SPID:+squid}; do
  r=$(med "$work/t3.txt" $l rps)
  printf '   %-9s %9s %8s %8s %12s %10s %7s\n' "$l" "$r" "$(med "$work/t3.txt" $l p50_ms)" "$(med "$work/t3.txt" $l p99_ms)" \
    "$(med "$work/t3.txt" $l cpu_us_per_op)" "$(ratio "$r" "$g3")" "$(errsum connect $l)"
  e=$(lasterr connect $l); [ -n "$e" ] && [ "$(errsum connect $l)" != 0 ] && echo "             last error: $e"
done
echo
echo "4. memory (MiB): RSS idle after start (lists loaded) -> RSS after the load, peak"
for l in "${labels[@]}"; do
  printf '   %-9s %6s -> %6s  peak %6s\n' "$l" "$(kv "$mem_idle" $l rss_mb)" "$(kv "$mem_after" $l rss_mb)" "$(kv "$mem_after" $l hwm_mb)"
done
echo
echo "floors:"
floor "hedgerow/goproxy HTTP rps" "$(ratio "$(med "$work/t1.txt" hedgerow rps)" "$g")" ">=" 0.85
floor "hedgerow p99 - goproxy p99 at half load (ms)" "$dp99" "<" 1
floor "hedgerow/goproxy CONNECT tunnels/s" "$(ratio "$(med "$work/t3.txt" hedgerow rps)" "$g3")" ">=" 0.9
if [ ${#dead[@]} -gt 0 ]; then echo "  [FAIL] died under load: ${dead[*]}"; else echo "  [PASS] every proxy survived the load"; fi
} | tee "$work/summary.txt"
if grep -q 'upstream failed' "$work/hedgerow.log"; then
  echo "hedgerow's failed upstream requests by error (debug log):"
  grep 'upstream failed' "$work/hedgerow.log" | grep -o 'err=.*' | sort | uniq -c | sort -rn | head -5
fi

echo
echo "hedgerow proxy metrics:"
curl -s -m 5 "http://127.0.0.1:$HADMIN_PORT/metrics" | grep -E '^hedgerow_proxy_' | grep -v '_bucket' | sort | head -30 || true
if grep -qiE 'level=(WARN|ERROR)|panic' "$work/hedgerow.log"; then
  echo "hedgerow log warnings/errors (last 20):"; grep -iE 'level=(WARN|ERROR)|panic' "$work/hedgerow.log" | tail -20
fi
[ -n "$SPID" ] && grep -qiE 'WARNING|ERROR|FATAL' "$sq/cache.log" && {
  echo "squid cache.log warnings (last 10):"; grep -iE 'WARNING|ERROR|FATAL' "$sq/cache.log" | tail -10; }
[ -n "${KEEP_LOGS:-}" ] && { mkdir -p "$KEEP_LOGS"; cp "$work"/*.log "$work"/t?.txt "$work/summary.txt" "$KEEP_LOGS"/ 2>/dev/null; [ -n "$SPID" ] && cp "$sq/cache.log" "$KEEP_LOGS/squid-cache.log"; echo "logs kept in $KEEP_LOGS"; }
exit 0
