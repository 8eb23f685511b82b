#!/usr/bin/env bash
# ImagingProxy DICOM benchmark (issue 3): one run on loopback, side by side:
#   direct   client -> storescp
#   proxy    client -> ImagingProxy (Release build of src/ImagingProxy.Host) -> storescp
#   proxy-early  the same, on a second listener with EarlyConnect (node connect in parallel with the A-ASSOCIATE-RQ)
#   haproxy  client -> HAProxy (mode tcp, balance leastconn) -> storescp
#   kestrel-relay  client -> bench/KestrelRelay -> storescp: a bare Kestrel byte relay with ImagingProxy's transport
#            settings and no DICOM work, the floor of the platform ImagingProxy is built on
# Measures C-STORE throughput (MB/s, images/s) of CT-like 0.5 MB and MG-like 26 MB files with PARALLEL storescu
# clients, and C-ECHO associations/s plus per-association latency with the in-process client (bench/dicom/EchoBench).
# After one unmeasured warm-up pass per target, targets run interleaved (direct, proxy, haproxy, direct, ...) for
# ROUNDS rounds; medians are printed.
# storescp runs with --fork --ignore (receives everything, writes nothing) so that disk speed is not measured.
# TCP_NODELAY=1 for every dcmtk process; ImagingProxy and HAProxy set TCP_NODELAY on their sockets themselves.
#
# Set-up latency is measured twice: back to back (the associations/s run: each association starts while the previous
# one is torn down, and on a small machine the proxy, storescp's fork and the client compete for the cores), and paced
# (PACED_COUNT associations, one every PACED_MS plus its own duration: a modality's pattern, each set-up on its own).
#
# usage: bench/dicom/run.sh            (env: CT_COUNT=400 MG_COUNT=12 PARALLEL=4 ROUNDS=3 ECHO_COUNT=2000 ECHO_CONCURRENCY=1 PDU=16384 PACED_COUNT=300 PACED_MS=20 WARM_ECHO=5000)
set -euo pipefail
export TCP_NODELAY=1
CT_COUNT="${CT_COUNT:-400}" MG_COUNT="${MG_COUNT:-12}" PARALLEL="${PARALLEL:-4}" ROUNDS="${ROUNDS:-3}"
ECHO_COUNT="${ECHO_COUNT:-2000}" ECHO_CONCURRENCY="${ECHO_CONCURRENCY:-1}" PDU="${PDU:-16384}"
PACED_COUNT="${PACED_COUNT:-300}" PACED_MS="${PACED_MS:-20}" WARM_ECHO="${WARM_ECHO:-5000}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d /tmp/imagingproxy-bench-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
now() { date +%s.%N; }

echo "== building (Release)" >&2
dotnet build "$repo/src/ImagingProxy.Host/ImagingProxy.Host.csproj" -c Release -v q -nologo >&2
dotnet build "$repo/bench/dicom/EchoBench/EchoBench.csproj" -c Release -v q -nologo >&2
dotnet build "$repo/bench/KestrelRelay/KestrelRelay.csproj" -c Release -v q -nologo >&2
relay_dll="$repo/bench/KestrelRelay/bin/Release/net10.0/KestrelRelay.dll"
host_dll="$repo/src/ImagingProxy.Host/bin/Release/net10.0/ImagingProxy.Host.dll"
echo_dll="$repo/bench/dicom/EchoBench/bin/Release/net10.0/EchoBench.dll"

# --- test data: dump2dcm from tests/data/dicom/image.dump.in, noise pixel data (incompressible) ---
. "$repo/bench/dicom/files.sh"
echo "== generating $CT_COUNT CT (0.5 MB) and $MG_COUNT MG (26 MB) files" >&2
make_dicom_files "$work/CT" CT "$CT_COUNT" 512 512 1.2.840.10008.5.1.4.1.1.2 Bench
make_dicom_files "$work/MG" MG "$MG_COUNT" 6656 2048 1.2.840.10008.5.1.4.1.1.1.2 Bench

# --- the node, ImagingProxy, HAProxy ---
scp_port="$(free_port)" proxy_port="$(free_port)" early_port="$(free_port)" admin_port="$(free_port)" ha_port="$(free_port)" relay_port="$(free_port)"
storescp --fork --ignore -aet PACS -pdu "$PDU" "$scp_port" >"$work/storescp.log" 2>&1 & pids+=($!)
# The proxy watches the directory of its --config file: keep it apart from the logs and results written during runs.
mkdir -p "$work/config"
cat >"$work/config/proxy.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:$admin_port" } } },
  "ReverseProxy": { "Routes": {}, "Clusters": { "pacs": { "LoadBalancingPolicy": "LeastRequests", "Metadata": { "Protocol": "Dicom" },
    "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:$scp_port" } } } } },
  "ImagingProxy": { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": $proxy_port },
                                              "dicom-early": { "Address": "127.0.0.1", "Port": $early_port, "EarlyConnect": true } },
    "Routes": { "any": { "CalledAeTitle": "*", "Cluster": "pacs" } } } }
}
JSON
DOTNET_gcServer=1 dotnet "$host_dll" --config "$work/config/proxy.json" >"$work/proxy.log" 2>&1 & pids+=($!); proxy_pid=$!
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 15m
  timeout server 15m
listen dicom
  bind 127.0.0.1:$ha_port
  balance leastconn
  server pacs1 127.0.0.1:$scp_port
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!); haproxy_pid=$!
DOTNET_gcServer=1 dotnet "$relay_dll" "$relay_port" "$scp_port" >"$work/relay.log" 2>&1 & pids+=($!); relay_pid=$!
wait_port "$scp_port"; wait_port "$proxy_port"; wait_port "$early_port"; wait_port "$ha_port"; wait_port "$relay_port"

declare -A port=([direct]="$scp_port" [proxy]="$proxy_port" [proxy-early]="$early_port" [haproxy]="$ha_port" [kestrel-relay]="$relay_port")
targets=(direct proxy proxy-early haproxy kestrel-relay)
declare -A cpu_pid=([direct]=0 [proxy]="$proxy_pid" [proxy-early]="$proxy_pid" [haproxy]="$haproxy_pid" [kestrel-relay]="$relay_pid")
# user and system CPU ticks of a process (utime, stime in /proc/PID/stat); "0 0" for direct (no proxy)
ticks() { if [[ $1 == 0 ]]; then echo "0 0"; else awk '{print $14, $15}' "/proc/$1/stat"; fi; }
hz=$(getconf CLK_TCK)

store_run() { # kind port -> "MB/s images/s"
  local kind="$1" p="$2" files=("$work/$1"/*.dcm) bytes start end
  bytes=$(du -cb "${files[@]}" | tail -1 | cut -f1)
  start=$(now)
  local cpids=()
  for ((c = 0; c < PARALLEL; c++)); do
    local part=()
    for ((i = c; i < ${#files[@]}; i += PARALLEL)); do part+=("${files[$i]}"); done
    storescu -aec PACS -pdu "$PDU" 127.0.0.1 "$p" "${part[@]}" >"$work/storescu.$c.log" 2>&1 & cpids+=($!)
  done
  local failed=0
  for cp in "${cpids[@]}"; do wait "$cp" || failed=1; done
  end=$(now)
  if ((failed)); then echo "storescu failed ($kind on port $p):" >&2; cat "$work"/storescu.*.log >&2; exit 1; fi
  python3 -c "import sys; b,n,t=float(sys.argv[1]),int(sys.argv[2]),float(sys.argv[4])-float(sys.argv[3]); print(f'{b/1e6/t:.1f} {n/t:.1f}')" "$bytes" "${#files[@]}" "$start" "$end"
}

# One unmeasured pass per target first: the proxy's code is tiered up by the runtime during its first seconds of
# traffic, and a proxy in service has long been warm (HAProxy and storescp need no warm-up, so they lose nothing).
# The C-ECHO associations warm the per-association path: with DOTNET_JitStdOutFile the runtime was still compiling
# (Tier0, instrumented, Tier1) through the first ~3000 back-to-back associations, at about half the later rate.
for t in "${targets[@]}"; do
  echo "== warm-up: $t" >&2
  store_run CT "${port[$t]}" >/dev/null
  dotnet "$echo_dll" 127.0.0.1 "${port[$t]}" PACS "$WARM_ECHO" 1 >/dev/null
done

results="$work/results.txt"; : >"$results"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${targets[@]}"; do
    echo "== round $r: $t" >&2
    read -r ct_mbs ct_ips < <(store_run CT "${port[$t]}")
    read -r mg_mbs mg_ips < <(store_run MG "${port[$t]}")
    read -r u0 s0 < <(ticks "${cpu_pid[$t]}")
    read -r eps emed ep90 esetup eall < <(dotnet "$echo_dll" 127.0.0.1 "${port[$t]}" PACS "$ECHO_COUNT" "$ECHO_CONCURRENCY")
    read -r u1 s1 < <(ticks "${cpu_pid[$t]}")
    # the proxy's own CPU per C-ECHO association (whole association: accept, RQ/AC, echo, release, close), ms, over every
    # association of the run (EchoBench's warm-up included, as the CPU ticks are)
    cpu=$(python3 -c "import sys; n,hz,du,ds=map(float,sys.argv[1:]); print(f'{du/hz*1e3/n:.3f} {ds/hz*1e3/n:.3f}')" "$eall" "$hz" $((u1 - u0)) $((s1 - s0)))
    read -r _ pmed _ psetup _ < <(dotnet "$echo_dll" 127.0.0.1 "${port[$t]}" PACS "$PACED_COUNT" 1 "$PACED_MS")
    echo "$t $ct_mbs $ct_ips $mg_mbs $mg_ips $eps $emed $ep90 $esetup $cpu $psetup $pmed" >>"$results"
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cols = ["CT MB/s", "CT img/s", "MG MB/s", "MG img/s", "echo assoc/s", "echo median ms", "echo p90 ms", "set-up med ms", "user ms/assoc", "sys ms/assoc", "paced set-up", "paced median"]
med = {}
targets = ("direct", "proxy", "proxy-early", "haproxy", "kestrel-relay")
for t in targets:
    vals = [[float(x) for x in r[1:]] for r in rows if r[0] == t]
    med[t] = [statistics.median(c) for c in zip(*vals)]
print(f"rounds: {len(rows)//len(targets)} (A-B-A-B interleaved), medians; proxy-early = the same proxy's listener with EarlyConnect;")
print("kestrel-relay = a bare Kestrel byte relay (bench/KestrelRelay): the platform's floor, no DICOM work")
print(f"{'target':<22}" + "".join(f"{c:>16}" for c in cols))
for t in targets:
    print(f"{t:<22}" + "".join(f"{v:>16.2f}" for v in med[t]))
ratio = lambda a, b: f"{a/b:>16.3f}" if b else f"{'-':>16}"
for p in ("proxy", "proxy-early", "kestrel-relay"):
    print(f"{p + ' / haproxy':<22}" + "".join(ratio(a, h) for a, h in zip(med[p], med['haproxy'])))
print(f"{'proxy / direct':<22}" + "".join(ratio(a, d) for a, d in zip(med['proxy'], med['direct'])))
print("user/sys ms/assoc: the proxy process's own CPU per C-ECHO association (/proc/PID/stat); direct has no proxy (0)")
print("association set-up overhead (median connect -> A-ASSOCIATE-AC minus direct), back to back: "
      + "; ".join(f"{t} {med[t][7]-med['direct'][7]:+.3f} ms" for t in ("proxy", "proxy-early", "haproxy", "kestrel-relay")))
print("whole echo association overhead (median connect ... close minus direct), back to back: "
      + "; ".join(f"{t} {med[t][5]-med['direct'][5]:+.3f} ms" for t in ("proxy", "proxy-early", "haproxy", "kestrel-relay")))
print("association set-up overhead, paced (one association at a time, a pause between): "
      + "; ".join(f"{t} {med[t][10]-med['direct'][10]:+.3f} ms" for t in ("proxy", "proxy-early", "haproxy", "kestrel-relay")))
print("whole echo association overhead, paced: "
      + "; ".join(f"{t} {med[t][11]-med['direct'][11]:+.3f} ms" for t in ("proxy", "proxy-early", "haproxy", "kestrel-relay")))
PY
