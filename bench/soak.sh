#!/usr/bin/env bash
# ImagingProxy soak test (a script, not a test): runs the Release proxy (src/ImagingProxy.Host, DOTNET_gcServer=1,
# log level Warning) for DURATION seconds with real peers on loopback and mixed traffic the whole time, and watches its
# resources for slow leaks:
#   DICOM  C-ECHO associations (bench/dicom/EchoBench, paced; by turns on a plain listener and an EarlyConnect one) and
#          C-STORE of small files (dcmtk storescu) to a cluster of two `storescp --fork --ignore` nodes; bad input on
#          both listeners: random bytes, a connection that sends nothing and closes, an A-ASSOCIATE-RQ cut short (one
#          closed after 2 s, one held past ARTIM), an A-ASSOCIATE-RQ to an unknown AE (echoscu)
#   MLLP   bench/mllp/LoadClient bursts to a cluster of two tests/peers/hl7_node.py receivers (python3-hl7); bad input:
#          bytes outside a frame, a frame with no MSH, a frame with no MSH-10, a silent connection
#   HTTP   nginx (or python3 -m http.server) behind a Viewers route, driven by wrk bursts, plus 404s
#   every RELOAD_EVERY s a hot reload (the --config file rewritten with a harmless change, alternating: the HTTP
#   route's Order, the DICOM and MLLP clusters' metadata); every KILL_EVERY s one DICOM node and one MLLP node are
#   killed (SIGKILL, in-flight associations included) and restarted NODE_DOWN s later; once, at a third of the run,
#   BURST idle connections (half to DICOM, half to MLLP) are opened, held 10 s and closed. Active health checks every 2 s
#   (C-ECHO, MLLP connect, HTTP GET), passive health on.
# Every SAMPLE s: the proxy's RSS (and its anonymous part), JIT code memory (/proc/PID/smaps), open fds (and sockets)
# and threads (/proc), and from /metrics on the Admin endpoint the GC heap (and its gen2 and LOH parts), committed
# memory, bytes allocated, thread-pool threads, timers, exceptions, loaded assemblies, JIT-compiled methods, the number
# of series lines (cardinality) and the active association/connection gauges -> $work/samples.csv. At the end: a summary after
# WARMUP s (first vs last, least-squares slope per minute over the whole window and over its second half), then, after
# the traffic stops and SETTLE s, a check that the gauges are back to 0 and the fds near the baseline taken before the
# traffic; a second check after SETTLE_LONG s (past the MLLP pool's and HTTP client's idle timeouts).
# Peers bind 127.0.0.1 only (storescp has no listen-address option: an LD_PRELOAD shim built with gcc moves its bind
# from 0.0.0.0 to 127.0.0.1; without gcc it binds all interfaces, as in bench/dicom/run.sh).
# The machine is expected to have 2 cores: the load is paced so that it does not starve the proxy.
#
# usage: bench/soak.sh     (env: DURATION=600 SAMPLE=10 WARMUP=60 RELOAD_EVERY=30 KILL_EVERY=45 NODE_DOWN=8
#                           SETTLE=15 SETTLE_LONG=75 ECHO_PAUSE_MS=4 ECHO_RUN=1000 MLLP_CONNECTIONS=2 MLLP_BURST=3 MLLP_PAUSE=7
#                           HTTP_BURST=3 HTTP_PAUSE=7 STORE_FILES=8 STORE_PAUSE=1 BAD_PAUSE=2 BURST=1000 (0: none)
#                           SOAK_DICOM=1 SOAK_STORE=1 SOAK_MLLP=1 SOAK_HTTP=1 SOAK_BAD=1 SOAK_RELOAD=1 SOAK_KILL=1 (0 turns
#                           a part off, to bisect) PROXY_ENV="K=V ..." (extra environment for the proxy) KEEP=1 (keep the work dir; it holds samples.csv and the logs))
set -euo pipefail
export TCP_NODELAY=1
DURATION="${DURATION:-600}" SAMPLE="${SAMPLE:-10}" WARMUP="${WARMUP:-60}" RELOAD_EVERY="${RELOAD_EVERY:-30}"
KILL_EVERY="${KILL_EVERY:-45}" NODE_DOWN="${NODE_DOWN:-8}" SETTLE="${SETTLE:-15}" SETTLE_LONG="${SETTLE_LONG:-75}"
ECHO_PAUSE_MS="${ECHO_PAUSE_MS:-4}" ECHO_RUN="${ECHO_RUN:-1000}" MLLP_CONNECTIONS="${MLLP_CONNECTIONS:-2}" MLLP_BURST="${MLLP_BURST:-3}"
MLLP_PAUSE="${MLLP_PAUSE:-7}" HTTP_BURST="${HTTP_BURST:-3}" HTTP_PAUSE="${HTTP_PAUSE:-7}" STORE_FILES="${STORE_FILES:-8}"
STORE_PAUSE="${STORE_PAUSE:-1}" BAD_PAUSE="${BAD_PAUSE:-2}" BURST="${BURST:-1000}" KEEP="${KEEP:-1}"
SOAK_DICOM="${SOAK_DICOM:-1}" SOAK_STORE="${SOAK_STORE:-1}" SOAK_MLLP="${SOAK_MLLP:-1}" SOAK_HTTP="${SOAK_HTTP:-1}"
SOAK_BAD="${SOAK_BAD:-1}" SOAK_RELOAD="${SOAK_RELOAD:-1}" SOAK_KILL="${SOAK_KILL:-1}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/imagingproxy-soak-XXXXXX)"
chmod 755 "$work"
py=/usr/bin/python3 # Debian's interpreter: it has python3-hl7

# --- process bookkeeping: every process started here is killed on exit, with its children (storescp forks) ---
loop_pids=() other_pids=()
declare -A node_pid=()
kill_tree() { # SIGNAL PID: the process and its descendants, children first
  local sig="$1" pid="$2" child
  for child in $(pgrep -P "$pid" 2>/dev/null); do kill_tree "$sig" "$child"; done
  kill "-$sig" "$pid" 2>/dev/null || true
}
cleanup() {
  touch "$work/stop" 2>/dev/null || true
  local p
  for p in "${loop_pids[@]}" "${node_pid[@]}" "${other_pids[@]}"; do kill_tree TERM "$p"; done
  wait 2>/dev/null || true
  if [[ $KEEP == 1 ]]; then rm -rf "$work/dcm"; echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 400); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
log() { echo "$(date +%T) $*" | tee -a "$work/events.log" >&2; }

echo "== building (Release)" >&2
dotnet build "$repo/src/ImagingProxy.Host/ImagingProxy.Host.csproj" -c Release -v q -nologo >&2
dotnet build "$repo/bench/dicom/EchoBench/EchoBench.csproj" -c Release -v q -nologo >&2
dotnet build "$repo/bench/mllp/LoadClient/LoadClient.csproj" -c Release -v q -nologo >&2
host_dll="$repo/src/ImagingProxy.Host/bin/Release/net10.0/ImagingProxy.Host.dll"
echo_dll="$repo/bench/dicom/EchoBench/bin/Release/net10.0/EchoBench.dll"
load_dll="$repo/bench/mllp/LoadClient/bin/Release/net10.0/LoadClient.dll"

# --- storescp on loopback: an LD_PRELOAD shim that binds 127.0.0.1 where 0.0.0.0 was asked ---
shim=""
if command -v gcc >/dev/null; then
  cat >"$work/bind_loopback.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real_bind)(int, const struct sockaddr *, socklen_t);
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in in4;
    memcpy(&in4, addr, sizeof in4);
    if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
      in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
    }
  }
  return real_bind(fd, addr, len);
}
C
  gcc -shared -fPIC -O2 -o "$work/bind_loopback.so" "$work/bind_loopback.c" -ldl && shim="$work/bind_loopback.so"
fi
[[ -n $shim ]] || echo "warning: no gcc, storescp binds all interfaces" >&2

# --- small DICOM files (64x64 CT, noise pixels) from tests/data/dicom/image.dump.in ---
. "$repo/bench/dicom/files.sh"
make_dicom_files "$work/dcm" CT "$STORE_FILES" 64 64 1.2.840.10008.5.1.4.1.1.2 Soak

# --- ports and peers ---
declare -A port=()
for name in scp1 scp2 hl7a hl7b web dicom dicom2 mllp viewers admin; do port[$name]="$(free_port)"; done
start_node() { # NAME
  case "$1" in
    scp*) LD_PRELOAD="$shim" storescp --fork --ignore -aet PACS -pdu 16384 "${port[$1]}" >>"$work/$1.log" 2>&1 & ;;
    hl7*) "$py" "$repo/tests/peers/hl7_node.py" --host 127.0.0.1 --port "${port[$1]}" >>"$work/$1.log" 2>&1 & ;;
  esac
  node_pid[$1]=$!
}
for n in scp1 scp2 hl7a hl7b; do start_node "$n"; done

mkdir -p "$work/www/web"
head -c 20000 /dev/urandom | base64 >"$work/www/web/index.html"
echo ok >"$work/www/web/health"
if command -v nginx >/dev/null; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
$([[ $(id -u) == 0 ]] && echo "user root;")
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy; fastcgi_temp_path $work/nginx/fcgi;
  uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:${port[web]}; root $work/www; keepalive_requests 100000; }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1 & other_pids+=($!)
else
  (cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "${port[web]}") >"$work/web.log" 2>&1 & other_pids+=($!)
fi

# --- the proxy's configuration; RELOAD (0, 1, 2, ...) picks the harmless variation ---
# The proxy watches the directory of its --config file: keep it apart from the logs and results written during runs.
mkdir -p "$work/config"
write_config() { # RELOAD
  local r="$1" order meta
  order=$(((r / 2) % 2 + 1))              # even reloads flip the HTTP route's Order (1, 2)
  meta=$([[ $(((r + 1) / 2 % 2)) == 1 ]] && echo b || echo a) # odd reloads flip the clusters' metadata (a, b)
  cat >"$work/proxy.json.new" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:${port[viewers]}" }, "Xds": { "Url": "http://127.0.0.1:0" },
                              "Admin": { "Url": "http://127.0.0.1:${port[admin]}" } } },
  "ReverseProxy": {
    "Routes": { "web": { "ClusterId": "web", "Order": $order, "Match": { "Path": "/web/{**rest}" } } },
    "Clusters": {
      "web": { "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:02", "Timeout": "00:00:01", "Path": "/web/health" } },
               "Destinations": { "nginx": { "Address": "http://127.0.0.1:${port[web]}/" } } },
      "pacs": { "LoadBalancingPolicy": "LeastRequests", "Metadata": { "Protocol": "Dicom", "Soak": "$meta" },
                "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:02", "Timeout": "00:00:01" },
                                 "Passive": { "Enabled": true, "ReactivationPeriod": "00:00:05" } },
                "Destinations": { "scp1": { "Address": "tcp://127.0.0.1:${port[scp1]}", "Metadata": { "AeTitle": "PACS" } },
                                  "scp2": { "Address": "tcp://127.0.0.1:${port[scp2]}", "Metadata": { "AeTitle": "PACS" } } } },
      "ris": { "Metadata": { "Protocol": "Mllp", "Soak": "$meta" },
               "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:02", "Timeout": "00:00:01" },
                                "Passive": { "Enabled": true, "ReactivationPeriod": "00:00:05" } },
               "Destinations": { "hl7a": { "Address": "tcp://127.0.0.1:${port[hl7a]}" },
                                 "hl7b": { "Address": "tcp://127.0.0.1:${port[hl7b]}" } } }
    }
  },
  "ImagingProxy": {
    "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": ${port[dicom]} },
                              "dicom-early": { "Address": "127.0.0.1", "Port": ${port[dicom2]}, "EarlyConnect": true } },
               "Routes": { "pacs": { "CalledAeTitle": "PACS", "Cluster": "pacs" } },
               "ArtimTimeout": "00:00:05", "ConnectTimeout": "00:00:02" },
    "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": ${port[mllp]} } },
              "Routes": { "all": { "Cluster": "ris" } },
              "AckTimeout": "00:00:05", "ConnectTimeout": "00:00:02", "PoolIdleTimeout": "00:00:10" }
  }
}
JSON
  mv "$work/proxy.json.new" "$work/config/proxy.json" # a rename: the watcher never sees half a file
}
write_config 0
# PROXY_ENV: extra environment for the proxy alone, e.g. PROXY_ENV="DOTNET_JitStdOutFile=/tmp/jit.txt DOTNET_JitDisasmSummary=1"
env ${PROXY_ENV:-} DOTNET_gcServer=1 dotnet "$host_dll" --config "$work/config/proxy.json" >"$work/proxy.log" 2>&1 & other_pids+=($!); proxy_pid=$!
for p in scp1 scp2 hl7a hl7b web dicom dicom2 mllp viewers admin; do wait_port "${port[$p]}"; done
[[ -z $shim ]] || ss -ltn "( sport = :${port[scp1]} )" | grep -q "127.0.0.1:${port[scp1]}" || { echo "storescp not on loopback" >&2; exit 1; }
port_names="$(for k in "${!port[@]}"; do printf '%s=%s ' "$k" "${port[$k]}"; done)"
log "work dir $work; proxy pid $proxy_pid; ports: $(for k in "${!port[@]}"; do printf '%s=%s ' "$k" "${port[$k]}"; done)"

# --- sampling ---
csv="$work/samples.csv"
echo "t,phase,rss_kib,rss_anon_kib,code_kib,fds,fd_sockets,threads,gc_heap_bytes,gc_gen2_bytes,gc_loh_bytes,gc_poh_bytes,gc_poh_free_bytes,gc_committed_bytes,allocated_bytes,working_set_bytes,tp_threads,timers,exceptions,assemblies,jit_methods,gen2_collections,series,dicom_active,hl7_active,kestrel_active_data,reloads_applied,reloads_rejected,dicom_associations,c_stores,hl7_messages,http_requests" >"$csv"
t_start=$(date +%s)
sample() { # PHASE
  local now rss threads fds
  now=$(($(date +%s) - t_start))
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$proxy_pid/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$proxy_pid/status")
  anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$proxy_pid/status")
  cp "/proc/$proxy_pid/smaps" "$work/smaps.$1" 2>/dev/null || true
  # the runtime's executable memory (JIT-compiled code and stubs) is mapped from a memfd named doublemapper
  code=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { m = /doublemapper/ } m && /^Rss:/ { r += $2 } END { print r + 0 }' "$work/smaps.$1")
  # an fd closed while it is listed makes ls/find fail: count what was seen
  fds=$( (ls "/proc/$proxy_pid/fd" 2>/dev/null || true) | wc -l)
  socks=$( (find "/proc/$proxy_pid/fd" -lname 'socket:*' 2>/dev/null || true) | wc -l)
  curl -s --max-time 5 "http://127.0.0.1:${port[admin]}/metrics" >"$work/metrics.last" || : >"$work/metrics.last"
  awk -v admin="${port[admin]}" -v pre="$now,$1,$rss,$anon,$code,$fds,$socks,$threads" '
    /^#/ || NF == 0 { next }
    { series++; name = $1; sub(/\{.*/, "", name); v = $NF + 0 }
    name == "dotnet_gc_last_collection_heap_size_bytes" { heap += v }
    name == "dotnet_gc_last_collection_heap_size_bytes" && /generation="gen2"/ { gen2size += v }
    name == "dotnet_gc_last_collection_heap_size_bytes" && /generation="loh"/ { lohsize += v }
    name == "dotnet_gc_last_collection_heap_size_bytes" && /generation="poh"/ { pohsize += v }
    name == "dotnet_gc_last_collection_heap_fragmentation_size_bytes" && /generation="poh"/ { pohfree += v }
    name == "dotnet_gc_last_collection_memory_committed_size_bytes" { committed += v }
    name == "dotnet_gc_heap_total_allocated_bytes_total" { alloc += v }
    name == "dotnet_process_memory_working_set_bytes" { ws += v }
    name ~ /^dotnet_thread_pool_thread_count/ { tp += v }
    name == "dotnet_timer_count" { timers += v }
    name == "dotnet_exceptions_total" { exc += v }
    name == "dotnet_assembly_count" { asm += v }
    name == "dotnet_jit_compiled_methods_total" { jit += v }
    name == "dotnet_gc_collections_total" && /gc_heap_generation="gen2"/ { gen2 += v }
    name == "imagingproxy_dicom_associations_active" { dact += v }
    name == "imagingproxy_hl7_connections_active" { hact += v }
    name == "kestrel_active_connections" && $0 !~ ("server_port=\"" admin "\"") { kact += v }
    name == "imagingproxy_config_reloads_total" && /result="applied"/ { applied += v }
    name == "imagingproxy_config_reloads_total" && /result="rejected"/ { rejected += v }
    name == "imagingproxy_dicom_associations_total" { assoc += v }
    name == "imagingproxy_dicom_dimse_operations_total" && /dicom_command_field="C-STORE-RQ"/ { stores += v }
    name == "imagingproxy_hl7_messages_total" { msgs += v }
    name == "imagingproxy_http_requests_total" { reqs += v }
    END { printf "%s,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n", pre, heap, gen2size, lohsize, pohsize, pohfree, committed, alloc, ws, tp, timers, exc, asm, jit, gen2, series, dact, hact, kact, applied, rejected, assoc, stores, msgs, reqs }
  ' "$work/metrics.last" >>"$csv"
  cp "$work/metrics.last" "$work/metrics.$1"
  if [[ $1 == run ]] && ((now >= WARMUP)) && [[ ! -e $work/metrics.warm ]]; then cp "$work/metrics.last" "$work/metrics.warm"; cp "$work/smaps.$1" "$work/smaps.warm"; fi
  curl -s --max-time 5 "http://127.0.0.1:${port[admin]}/status" >"$work/status.$1" || true
  # the proxy's TCP sockets by state and peer (a peer's port named), to see what is held
  ss -tanpH 2>/dev/null | awk -v pid="pid=$proxy_pid," -v names="$port_names" '
    BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) { split(a[i], kv, "="); name[kv[2]] = kv[1] } }
    index($0, pid) { split($4, l, ":"); split($5, r, ":"); lp = l[length(l)]; rp = r[length(r)]
      what = (rp in name) ? "to " name[rp] : (lp in name) ? "on " name[lp] : "other"; c[$1 " " what]++ }
    END { for (k in c) print c[k], k }' | sort -k2 >"$work/sockets.$1"
}

# --- traffic loops: each runs until $work/stop exists; every iteration is short (a few seconds) ---
running() { [[ ! -e "$work/stop" ]]; }
echo_loop() { # alternating between the plain listener and the EarlyConnect one
  local n=0
  while running; do
    n=$((n + 1))
    dotnet "$echo_dll" 127.0.0.1 "${port[$([[ $((n % 2)) == 0 ]] && echo dicom || echo dicom2)]}" PACS "$ECHO_RUN" 1 "$ECHO_PAUSE_MS" >>"$work/echo.out" 2>>"$work/echo.err" || echo "$(date +%T) EchoBench exit $?" >>"$work/echo.err"
  done
}
store_loop() {
  while running; do
    storescu -aec PACS 127.0.0.1 "${port[dicom]}" "$work"/dcm/*.dcm >>"$work/storescu.log" 2>&1 || echo "$(date +%T) storescu exit $?" >>"$work/store.err"
    sleep "$STORE_PAUSE"
  done
}
mllp_loop() {
  while running; do
    dotnet "$load_dll" "${port[mllp]}" "$MLLP_CONNECTIONS" "$MLLP_BURST" >>"$work/loadclient.out" 2>>"$work/loadclient.err" || echo "$(date +%T) LoadClient exit $?" >>"$work/loadclient.err"
    sleep "$MLLP_PAUSE"
  done
}
http_loop() {
  while running; do
    wrk -t1 -c4 -d"${HTTP_BURST}s" "http://127.0.0.1:${port[viewers]}/web/index.html" >>"$work/wrk.out" 2>&1 || true
    for path in /web/missing /elsewhere /web/health; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:${port[viewers]}$path" || true; done
    sleep "$HTTP_PAUSE"
  done
}
# a raw connection: send the bytes of a printf format (may be empty), read for up to HOLD s (default 2), close
raw() { # PORT FORMAT [HOLD]
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "$2" >&3 && timeout "${3:-2}" cat <&3 >/dev/null; exec 3>&-) 2>/dev/null || true
}
bad_loop() {
  # an A-ASSOCIATE-RQ header announcing 205 bytes, cut after 20 (PS3.8 9.3.2): the proxy waits for the rest until ARTIM
  local rq_cut='\x01\x00\x00\x00\x00\xcd\x00\x01\x00\x00PACS            '
  local no_msh10='\x0bMSH|^~\\&|SOAK|RAD|RIS|HOSP|20250101120000||ADT^A08|||2.5.1\rPID|1||1\r\x1c\r'
  local n=0 d
  while running; do
    n=$((n + 1)) d="${port[$([[ $((n % 2)) == 0 ]] && echo dicom || echo dicom2)]}" # both listeners, by turns
    head -c 300 /dev/urandom >"/dev/tcp/127.0.0.1/$d" 2>/dev/null || true
    raw "$d" ''
    raw "$d" "$rq_cut"
    raw "$d" "$rq_cut" 8 & # held past ARTIM (5 s): the proxy ends it
    echoscu -aec NOBODY -aet SOAK 127.0.0.1 "$d" >/dev/null 2>&1 || true
    raw "${port[mllp]}" 'garbage outside any frame\r'
    raw "${port[mllp]}" '\x0bnot an HL7 message\x1c\r'
    raw "${port[mllp]}" "$no_msh10"
    raw "${port[mllp]}" ''
    sleep "$BAD_PAUSE"
  done
}

# once, at a third of the run: BURST idle connections (half DICOM, half MLLP) held 10 s, then closed (a modality
# storm, a port scan): each holds a receive buffer while open, and what the burst took should be given back later
burst() {
  "$py" - "$BURST" "${port[dicom]}" "${port[mllp]}" <<'PYB' >>"$work/burst.log" 2>&1
import socket, sys, time
n, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
held = []
for i in range(n):
    try: held.append(socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=5))
    except OSError as e: print("connect failed:", e)
print(f"{len(held)} connections open", flush=True)
time.sleep(10)
for s in held: s.close()
PYB
}

# --- baseline, then traffic with reloads and node kills until the deadline ---
sleep 5 # the first probe rounds
sample baseline
log "baseline: $(tail -1 "$csv")"
[[ $SOAK_DICOM == 1 ]] && { echo_loop & loop_pids+=($!); }
[[ $SOAK_STORE == 1 ]] && { store_loop & loop_pids+=($!); }
[[ $SOAK_MLLP == 1 ]] && { mllp_loop & loop_pids+=($!); }
[[ $SOAK_HTTP == 1 ]] && { http_loop & loop_pids+=($!); }
[[ $SOAK_BAD == 1 ]] && { bad_loop & loop_pids+=($!); }
t_start=$(date +%s) # t counts from the start of the traffic; the baseline row has t <= 0
sed -i '2s/^[0-9]*,/0,/' "$csv"
log "traffic started for ${DURATION}s"
end_at=$((t_start + DURATION)) next_sample=$((t_start + SAMPLE)) next_reload=$((t_start + RELOAD_EVERY)) next_kill=$((t_start + KILL_EVERY))
reloads=0 kills=0 restart_at=0 down=() burst_at=$((t_start + DURATION / 3))
while (($(date +%s) < end_at)); do
  now=$(date +%s)
  if ((now >= next_sample)); then sample run; next_sample=$((next_sample + SAMPLE)); fi
  if ((BURST > 0 && burst_at != 0 && now >= burst_at)); then
    burst & other_pids+=($!); burst_at=0; log "burst: $BURST idle connections for 10 s"
  fi
  if [[ $SOAK_RELOAD == 1 ]] && ((now >= next_reload)); then
    reloads=$((reloads + 1)); write_config "$reloads"; log "reload $reloads"; next_reload=$((next_reload + RELOAD_EVERY))
  fi
  if [[ $SOAK_KILL == 1 ]] && ((now >= next_kill)) && ((restart_at == 0)); then
    kills=$((kills + 1))
    down=("scp$((kills % 2 + 1))" "hl7$([[ $((kills % 2)) == 0 ]] && echo a || echo b)")
    for n in "${down[@]}"; do kill_tree KILL "${node_pid[$n]}"; done
    wait "${node_pid[${down[0]}]}" "${node_pid[${down[1]}]}" 2>/dev/null || true
    log "killed ${down[*]}"; restart_at=$((now + NODE_DOWN)); next_kill=$((next_kill + KILL_EVERY))
  fi
  if ((restart_at != 0 && now >= restart_at)); then
    for n in "${down[@]}"; do start_node "$n"; done
    log "restarted ${down[*]}"; restart_at=0
  fi
  sleep 1
done
if ((restart_at != 0)); then for n in "${down[@]}"; do start_node "$n"; done; log "restarted ${down[*]}"; fi
touch "$work/stop"
log "traffic stopping (reloads: $reloads, node kills: $kills); waiting for the loops"
wait "${loop_pids[@]}" 2>/dev/null || true
loop_pids=()
t_stop=$(($(date +%s) - t_start))
log "traffic stopped at t=${t_stop}s; settling ${SETTLE}s"
sleep "$SETTLE"
sample settle
sleep $((SETTLE_LONG > SETTLE ? SETTLE_LONG - SETTLE : 0))
sample settle-long

# --- summary ---
lines() { cat "$@" 2>/dev/null | grep -c "${pattern:-.}" || true; }
echo "== traffic: $(lines "$work/echo.out") EchoBench runs ($(pattern='EchoBench exit' lines "$work/echo.err") with failed echoes)," \
  "$(pattern='storescu exit' lines "$work/store.err") failed storescu runs," \
  "$(lines "$work/loadclient.out") LoadClient runs ($(pattern='LoadClient exit' lines "$work/loadclient.err") failed), $reloads reloads, $kills node kills"
"$py" - "$csv" "$WARMUP" "$reloads" "$work" "$((BURST > 0 ? DURATION / 3 : 0))" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
warmup, reloads, work, burst_t = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
run = [r for r in rows if r["phase"] == "run" and float(r["t"]) >= warmup]
base_fds, base_socks = int(rows[0]["fds"]), int(rows[0]["fd_sockets"])
MiB = 1024 * 1024
res = [  # column, label, scale, unit
    ("rss_kib", "rss", 1 / 1024, "MiB"), ("rss_anon_kib", "rss anonymous", 1 / 1024, "MiB"), ("code_kib", "jit code (rss)", 1 / 1024, "MiB"), ("gc_heap_bytes", "gc heap", 1 / MiB, "MiB"), ("gc_gen2_bytes", "gc gen2", 1 / MiB, "MiB"), ("gc_loh_bytes", "gc loh", 1 / MiB, "MiB"),
    ("gc_poh_bytes", "gc poh (pinned buffers)", 1 / MiB, "MiB"),
    ("gc_committed_bytes", "gc committed", 1 / MiB, "MiB"), ("fds", "fds", 1, ""), ("fd_sockets", "fds: sockets", 1, ""), ("threads", "threads", 1, ""),
    ("tp_threads", "thread-pool threads", 1, ""), ("timers", "timers", 1, ""), ("assemblies", "assemblies", 1, ""), ("jit_methods", "jit-compiled methods", 1, ""),
    ("series", "series", 1, ""), ("dicom_active", "dicom associations active", 1, ""),
    ("hl7_active", "hl7 connections active", 1, ""), ("kestrel_active_data", "kestrel connections active (data)", 1, ""),
]
def slope(pts):  # least squares, per minute
    if len(pts) < 2: return float("nan")
    n = len(pts); mx = sum(x for x, _ in pts) / n; my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return 60 * sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else float("nan")
if len(run) < 3:
    print(f"too few samples after the {warmup:.0f} s warm-up ({len(run)}): run longer"); sys.exit(0)
t0, t1 = float(run[0]["t"]), float(run[-1]["t"])
half = [r for r in run if float(r["t"]) >= (t0 + t1) / 2]
print(f"== soak summary: {len(run)} samples from t={t0:.0f}s to t={t1:.0f}s (after a {warmup:.0f} s warm-up)")
print(f"{'resource':<36}{'baseline':>12}{'first':>12}{'last':>12}{'min':>12}{'max':>12}{'slope/min':>12}{'2nd half/min':>14}")
verdicts = []
for col, label, scale, unit in res:
    v = [(float(r["t"]), float(r[col]) * scale) for r in run]
    h = [(float(r["t"]), float(r[col]) * scale) for r in half]
    base = float(rows[0][col]) * scale
    s, s2 = slope(v), slope(h)
    ys = [y for _, y in v]
    print(f"{label + (' (' + unit + ')' if unit else ''):<36}{base:>12.1f}{ys[0]:>12.1f}{ys[-1]:>12.1f}{min(ys):>12.1f}{max(ys):>12.1f}{s:>+12.3f}{s2:>+14.3f}")
    verdicts.append(f"{label}: {s:+.3f} {unit + '/min' if unit else 'per min'} after warm-up ({ys[0]:.1f} -> {ys[-1]:.1f} {unit}; second half {s2:+.3f}/min)")
alloc = [(float(r["t"]), float(r["allocated_bytes"]) / MiB) for r in run]
print(f"{'allocated (MiB/s, not a leak)':<36}{'':>12}{'':>12}{'':>12}{'':>12}{'':>12}{slope(alloc) / 60:>+12.1f}")
for line in verdicts: print(line)
last = run[-1]
print(f"traffic over the run: {last['dicom_associations']} DICOM associations ({last['c_stores']} C-STORE), {last['hl7_messages']} HL7 messages, "
      f"{last['http_requests']} HTTP requests; exceptions {rows[0]['exceptions']} -> {last['exceptions']}; "
      f"reloads applied {last['reloads_applied']} (rejected {last['reloads_rejected']}) of {reloads} written")
# the burst: the pinned heap (where the transport's receive blocks live) before it, at its peak after it, at the end;
# the GC's figure counts free space left in the pinned heap's regions (fragmentation) apart
poh = [(float(r["t"]), int(r["gc_poh_bytes"]) / MiB) for r in rows if r["phase"] == "run"]
if burst_t > 0 and poh:
    before = [v for t, v in poh if t < burst_t]
    after = [(t, v) for t, v in poh if t >= burst_t]
    base = before[-1] if before else 0.0
    peak_t, peak = max(after, key=lambda p: p[1]) if after else (burst_t, base)
    peak_t = next(t for t, v in after if v == peak) if after else peak_t
    end, free = int(rows[-1]["gc_poh_bytes"]) / MiB, int(rows[-1]["gc_poh_free_bytes"]) / MiB
    print(f"burst at t={burst_t:.0f}s: pinned heap (gc poh) {base:.1f} MiB before, {peak:.1f} MiB at t={peak_t:.0f}s, "
          f"{end:.1f} MiB at the end ({rows[-1]['phase']}) of which {free:.1f} MiB free space: "
          f"{max(end - free - base, 0):.1f} MiB still in use above the level before the burst")
def status_counts(path):  # what /status says is still open: associations, MLLP connections, per-destination requests
    import json
    try: st = json.load(open(path))
    except Exception as e: return f"/status unreadable ({e})"
    held = [f"listener {l['name']} {k}={l[k]}" for l in st.get("listeners", []) for k in ("openAssociations", "openConnections") if l.get(k)]
    held += [f"{c['id']}/{d['id']} activeRequests={d['activeRequests']}" for c in st.get("clusters", []) for d in c.get("destinations", []) if d.get("activeRequests")]
    health = " ".join(f"{c['id']}/{d['id']}={d['health']['active']}/{d['health']['passive']}" for c in st.get("clusters", []) for d in c.get("destinations", []))
    return ("nothing held: OK" if not held else "STILL HELD: " + ", ".join(held)) + f"; health (active/passive) {health}"
for phase in ("settle", "settle-long"):
    r = next((x for x in rows if x["phase"] == phase), None)
    if r is None: continue
    gauges = {k: int(r[k]) for k in ("dicom_active", "hl7_active", "kestrel_active_data")}
    fds, socks = int(r["fds"]), int(r["fd_sockets"])
    ok = all(v == 0 for v in gauges.values())
    print(f"after traffic ({phase}, t={r['t']}s): gauges {gauges} {'all 0: OK' if ok else 'NOT 0: connections not released'}; "
          f"fds {fds} (baseline {base_fds}, {fds - base_fds:+d}), of which sockets {socks} (baseline {base_socks}, {socks - base_socks:+d})"
          f"{' OK' if socks - base_socks <= 4 else ' ABOVE BASELINE'}; "
          f"threads {r['threads']}, rss {int(r['rss_kib']) / 1024:.1f} MiB, gc heap {int(r['gc_heap_bytes']) / MiB:.1f} MiB")
    print(f"  /status ({phase}): {status_counts(work + '/status.' + phase)}")
PY
# series that appeared after the warm-up, by metric: cardinality that keeps growing shows here
if [[ -e $work/metrics.warm ]]; then
  series() { grep -v '^#' "$1" | sed 's/ [^ ]*$//' | sort -u; }
  new=$(comm -13 <(series "$work/metrics.warm") <(series "$work/metrics.run"))
  gone=$(comm -23 <(series "$work/metrics.warm") <(series "$work/metrics.run"))
  echo "series added after the warm-up: $(grep -c . <<<"$new" || true), gone: $(grep -c . <<<"$gone" || true); added by metric:"
  grep . <<<"$new" | sed 's/{.*//' | sort | uniq -c | sort -rn | head -15 | sed 's/^/  /' || true
fi
for phase in baseline settle settle-long; do echo "proxy sockets ($phase): $(tr '\n' ';' <"$work/sockets.$phase" 2>/dev/null)"; done
echo "samples: $csv" >&2
