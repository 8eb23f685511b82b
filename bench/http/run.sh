#!/usr/bin/env bash
# HTTP (DICOMweb) benchmark (a script, not a test): requests/s, transfer rate and p50/p99 latency of a QIDO-RS-like
# 2 KiB JSON answer and a WADO-RS-like 512 KiB frame, fetched by wrk over keep-alive connections: direct from the
# web server (nginx), through ImagingProxy's Viewers endpoint (Release build of src/ImagingProxy.Host: YARP, TLS
# terminated), through HAProxy (mode http) and through NGINX (proxy_pass with upstream keep-alive), both terminating
# TLS the same way with the same certificate, and through bench/YarpBare (YARP as its documentation sets it up, with
# ImagingProxy's scheduling settings and without its steps, telemetry and memory pool); interleaved A-B-A-B over ROUNDS
# rounds; prints medians and ratios in one table, with each proxy's own CPU per request (user and system time from
# /proc/PID/stat).
#
# Usage: bench/http/run.sh [SECONDS_PER_RUN=5] [ROUNDS=3]
# env:   TLS=1 (0: every proxy listens on plain HTTP), CASES="small:8 small:64 large:8" (file:connections),
#        BENCH_DIR (work files, default /tmp/http-bench), PORT_BASE (default 29300: PORT_BASE..PORT_BASE+4)
# Needs: dotnet (SDK of global.json), nginx, haproxy, wrk, openssl. Direct is always plain HTTP: it is the web
# server's own rate, the ceiling the proxies are read against.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${BENCH_DIR:-/tmp/http-bench}
seconds=${1:-5}
rounds=${2:-3}
tls=${TLS:-1}
cases=${CASES:-small:8 small:64 large:8}
base=${PORT_BASE:-29300}
web_port=$base proxy_port=$((base + 1)) haproxy_port=$((base + 2)) nginx_port=$((base + 3)) yarp_port=$((base + 4))
for tool in nginx haproxy wrk openssl; do
  command -v "$tool" >/dev/null || { echo "bench/http/run.sh needs $tool (scripts/install-peers.sh installs it)" >&2; exit 1; }
done
rm -rf "$work/www" "$work/web" "$work/front"
mkdir -p "$work/www/dicom-web" "$work/tls" "$work/web" "$work/front" "$work/config"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "building ImagingProxy (Release) ..." >&2
dotnet build -c Release "$repo/src/ImagingProxy.Host" -o "$work/proxy" -v q -nologo >/dev/null
dotnet build -c Release "$repo/bench/YarpBare" -o "$work/yarp" -v q -nologo >/dev/null

# The answers: a QIDO-RS study list (2 KiB of JSON) and one WADO-RS frame (512 KiB).
python3 - "$work/www/dicom-web" <<'PY'
import json, os, sys
studies = [{"0020000D": {"vr": "UI", "Value": [f"1.2.826.0.1.3680043.8.498.{i}"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"DOE^JOHN{i}"}]},
            "00080020": {"vr": "DA", "Value": ["20261129"]}, "00080061": {"vr": "CS", "Value": ["CT"]}} for i in range(8)]
text = json.dumps(studies)
open(os.path.join(sys.argv[1], "studies"), "w").write((text + " " * 2048)[:2048])
open(os.path.join(sys.argv[1], "frame"), "wb").write(os.urandom(512 * 1024))
PY
declare -A paths=([small]=/dicom-web/studies [large]=/dicom-web/frame)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$work/tls/proxy.key" -out "$work/tls/proxy.crt" 2>/dev/null
cat "$work/tls/proxy.crt" "$work/tls/proxy.key" >"$work/tls/proxy.pem"
scheme=$([[ $tls == 1 ]] && echo https || echo http)
ssl=$([[ $tls == 1 ]] && echo ssl || echo "")

user_line=$([[ $(id -u) == 0 ]] && echo "user root;" || echo "")
nginx_common="$user_line
daemon off;
events { worker_connections 4096; }"
nginx_http_common='access_log off; client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;'
# the web server: one worker, as a PACS's web front would have its own machine
cat >"$work/web/nginx.conf" <<CONF
$nginx_common
worker_processes 1;
pid $work/web/nginx.pid;
error_log $work/web/error.log warn;
http { $nginx_http_common
  default_type application/dicom+json;
  server { listen 127.0.0.1:$web_port; root $work/www; keepalive_requests 1000000; } }
CONF
# NGINX as the proxy: its usual reverse-proxy set-up (upstream keep-alive, HTTP/1.1, X-Forwarded-For), a worker per core
cat >"$work/front/nginx.conf" <<CONF
$nginx_common
worker_processes auto;
pid $work/front/nginx.pid;
error_log $work/front/error.log warn;
http { $nginx_http_common
  upstream nodes { server 127.0.0.1:$web_port; keepalive 128; }
  server { listen 127.0.0.1:$nginx_port $ssl; keepalive_requests 1000000;
    $([[ $tls == 1 ]] && echo "ssl_certificate $work/tls/proxy.crt; ssl_certificate_key $work/tls/proxy.key;")
    location / { proxy_pass http://nodes; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
                 proxy_set_header X-Forwarded-Proto \$scheme; } } }
CONF
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend web
  bind 127.0.0.1:$haproxy_port $([[ $tls == 1 ]] && echo "ssl crt $work/tls/proxy.pem")
  option forwardfor
  http-request set-header X-Forwarded-Proto $scheme
  default_backend nodes
backend nodes
  server n1 127.0.0.1:$web_port
CFG
# The proxy watches the directory of its --config file: keep it apart from the logs written during runs.
endpoint() { # PORT -> a Kestrel endpoint's Url (and certificate)
  [[ $tls == 1 ]] && echo "\"Url\": \"https://127.0.0.1:$1\", \"Certificate\": { \"Path\": \"$work/tls/proxy.crt\", \"KeyPath\": \"$work/tls/proxy.key\" }" \
    || echo "\"Url\": \"http://127.0.0.1:$1\""
}
routes='"Routes": { "dicomweb": { "ClusterId": "pacs-web", "Match": { "Path": "/dicom-web/{**rest}" } } },
    "Clusters": { "pacs-web": { "Destinations": { "web1": { "Address": "http://127.0.0.1:'"$web_port"'/" } } } }'
cat >"$work/config/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { $(endpoint "$proxy_port") }, "Xds": { "Enabled": false }, "Admin": { "Url": "http://127.0.0.1:0" } } },
  "ReverseProxy": { $routes }
}
JSON
cat >"$work/yarp.json" <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Web": { $(endpoint "$yarp_port") } } },
  "ReverseProxy": { $routes } }
JSON

for port in "$web_port" "$proxy_port" "$haproxy_port" "$nginx_port" "$yarp_port"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then echo "port $port is in use (a leftover run?): set PORT_BASE" >&2; exit 1; fi
done
(cd "$work/web" && exec nginx -c "$work/web/nginx.conf" -p "$work/web") >"$work/web.log" 2>&1 & pids+=($!)
(cd "$work/front" && exec nginx -c "$work/front/nginx.conf" -p "$work/front") >"$work/front.log" 2>&1 & pids+=($!); nginx_pid=$!
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & pids+=($!); haproxy_pid=$!
DOTNET_gcServer=1 dotnet "$work/proxy/ImagingProxy.Host.dll" --config "$work/config/proxy.json" >"$work/proxy.log" 2>&1 & pids+=($!); proxy_pid=$!
DOTNET_gcServer=1 dotnet "$work/yarp/YarpBare.dll" --config "$work/yarp.json" >"$work/yarp.log" 2>&1 & pids+=($!); yarp_pid=$!
for port in "$web_port" "$proxy_port" "$haproxy_port" "$nginx_port" "$yarp_port"; do
  for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.2; done
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null || { echo "port $port never opened; logs in $work" >&2; exit 1; }
done

declare -A url=([direct]="http://127.0.0.1:$web_port" [imagingproxy]="$scheme://127.0.0.1:$proxy_port"
  [haproxy]="$scheme://127.0.0.1:$haproxy_port" [nginx]="$scheme://127.0.0.1:$nginx_port" [yarp]="$scheme://127.0.0.1:$yarp_port")
# user and system CPU ticks of a process and its children threads (utime, stime in /proc/PID/stat), summed over the
# processes listed (nginx: its workers); "0 0" for none
ticks() {
  local sum_u=0 sum_s=0 p u s
  for p in "$@"; do read -r u s < <(awk '{print $14, $15}' "/proc/$p/stat"); sum_u=$((sum_u + u)); sum_s=$((sum_s + s)); done
  echo "$sum_u $sum_s"
}
cpu_pids() { case $1 in direct) ;; imagingproxy) echo "$proxy_pid" ;; haproxy) echo "$haproxy_pid" ;; yarp) echo "$yarp_pid" ;; nginx) pgrep -P "$nginx_pid" | tr '\n' ' ' ;; esac; }
hz=$(getconf CLK_TCK)
results="$work/results.txt"
: >"$results"
# one wrk run -> "requests rps MBps p50_ms p99_ms errors"
run_wrk() { # URL CONNECTIONS SECONDS
  wrk -t1 -c"$2" -d"$3s" --latency "$1" | python3 -c '
import re, sys
out = sys.stdin.read()
def ms(v):
    n, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]
def size(v):
    n, unit = re.fullmatch(r"([\d.]+)([KMG]?B)", v).groups()
    return float(n) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit] / (1 << 20)
req = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
mbps = size(re.search(r"Transfer/sec:\s+(\S+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errors += int(m.group(1)) if m else 0
print(req, f"{rps:.1f}", f"{mbps:.2f}", f"{p50:.3f}", f"{p99:.3f}", errors)'
}
echo "warm-up (JIT tiering, connection pools) ..." >&2
for target in imagingproxy haproxy nginx yarp; do for c in $cases; do run_wrk "${url[$target]}${paths[${c%%:*}]}" "${c##*:}" 2 >/dev/null; done; done
for round in $(seq "$rounds"); do
  for c in $cases; do
    file=${c%%:*} conns=${c##*:}
    order=(direct imagingproxy haproxy nginx yarp)
    ((round % 2 == 0)) && order=(yarp nginx haproxy imagingproxy direct)
    for target in "${order[@]}"; do
      read -r -a watched <<<"$(cpu_pids "$target")"
      read -r u0 s0 < <(ticks "${watched[@]}")
      line=$(run_wrk "${url[$target]}${paths[$file]}" "$conns" "$seconds")
      read -r u1 s1 < <(ticks "${watched[@]}")
      cpu=$(python3 -c "import sys; n,hz,du,ds=map(float,sys.argv[1:]); n=max(n,1); print(f'{du/hz*1e6/n:.1f} {ds/hz*1e6/n:.1f}')" "${line%% *}" "$hz" $((u1 - u0)) $((s1 - s0)))
      echo "$round $file $conns $target $line $cpu" | tee -a "$results" >&2
    done
  done
done

python3 - "$results" "$seconds" "$rounds" "$tls" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
targets = ("direct", "imagingproxy", "haproxy", "nginx", "yarp")
print(f"HTTP bench ({'TLS to the proxies' if sys.argv[4] == '1' else 'plain HTTP'}; direct is plain): {sys.argv[3]} rounds x {sys.argv[2]} s per run, medians;"
      " ratios of requests/s vs HAProxy and vs NGINX, added p50 vs direct")
print(f"{'file':<5} {'conns':>5} {'target':<12} {'req/s':>9} {'MiB/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x HAProxy':>9} {'x NGINX':>7} {'+p50 ms':>7} {'errors':>6} {'user us/req':>11} {'sys us/req':>10}")
for case in dict.fromkeys((r[1], r[2]) for r in rows):
    med = {}
    for t in targets:
        rs = [r for r in rows if (r[1], r[2]) == case and r[3] == t]
        med[t] = [statistics.median(float(r[i]) for r in rs) for i in (5, 6, 7, 8, 10, 11)] + [sum(int(r[9]) for r in rs)]
    for t in targets:
        rps, mbps, p50, p99, user, system, errors = med[t]
        print(f"{case[0]:<5} {case[1]:>5} {t:<12} {rps:>9.0f} {mbps:>8.1f} {p50:>7.3f} {p99:>7.3f} {rps / med['haproxy'][0]:>9.2f} {rps / med['nginx'][0]:>7.2f} "
              f"{p50 - med['direct'][2]:>7.3f} {errors:>6} {user:>11.1f} {system:>10.1f}")
print("files: small = a 2 KiB QIDO-RS JSON answer, large = a 512 KiB WADO-RS frame; wrk -t1 over keep-alive connections")
print("user/sys us/req: the proxy's own CPU per request (/proc/PID/stat; NGINX: its workers); direct has no proxy (0)")
print("yarp: bare YARP (bench/YarpBare) with ImagingProxy's scheduling settings: no ImagingProxy step, metric, configuration gate or 32 KiB receive blocks")
PY
