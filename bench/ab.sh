#!/usr/bin/env bash
# Paired A/B of two ImagingProxy builds (a script, not a test): A = the working tree, B = a git ref. Both proxies run at
# once over the same node; each round runs A then B (then B then A the next round, so neither always goes first), and
# the figures that matter are printed as medians plus how many pairs A won. On a shared 2-core machine a single
# throughput figure moves by +-10% between runs; CPU per message or association from /proc is steadier, and a change
# that wins most pairs is real where one run's ratio is not.
#
#   bench/ab.sh mllp REF [ROUNDS=11] [SECONDS=3]   K=8 connections (bench/mllp/LoadClient, bench/mllp/receiver.py)
#   bench/ab.sh dicom REF [ROUNDS=7] [COUNT=600]   C-ECHO associations one after another (bench/dicom/EchoBench, storescp --fork)
#   bench/ab.sh http REF [ROUNDS=11] [SECONDS=3]   a 2 KiB GET on the Viewers endpoint (plain HTTP), wrk -t1 -c8, nginx as the server
#
# A_ENV / B_ENV (space-separated NAME=value) go to proxy A's or B's process only: with REF = HEAD and a clean working
# tree, `A_ENV=DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT=4 bench/ab.sh mllp HEAD` measures a runtime knob alone, with no
# build of its own that could carry anything else.
set -euo pipefail
kind="${1:?usage: bench/ab.sh mllp|dicom|http REF [ROUNDS] [SECONDS|COUNT]}"
ref="${2:?usage: bench/ab.sh mllp|dicom|http REF [ROUNDS] [SECONDS|COUNT]}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/imagingproxy-ab-XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git -C "$repo" worktree remove --force "$work/ref" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "== building A (working tree) and B ($ref)" >&2
git -C "$repo" worktree add --detach "$work/ref" "$ref" >/dev/null 2>&1
dotnet build "$repo/src/ImagingProxy.Host" -c Release -o "$work/a" -v q -nologo >/dev/null
dotnet build "$work/ref/src/ImagingProxy.Host" -c Release -o "$work/b" -v q -nologo >/dev/null

node="$(free_port)" port_a="$(free_port)" port_b="$(free_port)"
config() { # listener-port -> proxy configuration for $kind
  if [[ $kind == mllp ]]; then cat <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
  "ReverseProxy": { "Routes": {}, "Clusters": { "bench": { "Metadata": { "Protocol": "Mllp" }, "Destinations": { "n1": { "Address": "tcp://127.0.0.1:$node" } } } } },
  "ImagingProxy": { "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": $1 } }, "Routes": [ { "MessageType": "*", "Cluster": "bench" } ] } } }
JSON
  elif [[ $kind == http ]]; then cat <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:$1" }, "Xds": { "Enabled": false }, "Admin": { "Url": "http://127.0.0.1:0" } } },
  "ReverseProxy": { "Routes": { "dicomweb": { "ClusterId": "pacs-web", "Match": { "Path": "/dicom-web/{**rest}" } } },
    "Clusters": { "pacs-web": { "Destinations": { "web1": { "Address": "http://127.0.0.1:$node/" } } } } } }
JSON
  else cat <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
  "ReverseProxy": { "Routes": {}, "Clusters": { "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:$node" } } } } },
  "ImagingProxy": { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": $1 } }, "Routes": { "any": { "CalledAeTitle": "*", "Cluster": "pacs" } } } } }
JSON
  fi
}
# Each proxy watches the directory of its --config file: keep the files written during runs out of it.
mkdir -p "$work/config-a" "$work/config-b"
config "$port_a" >"$work/config-a/proxy.json"; config "$port_b" >"$work/config-b/proxy.json"

case "$kind" in
  mllp)
    rounds="${3:-11}" seconds="${4:-3}"
    dotnet build "$repo/bench/mllp/LoadClient" -c Release -o "$work/client" -v q -nologo >/dev/null
    python3 "$repo/bench/mllp/receiver.py" "$node" & pids+=($!)
    run() { dotnet "$work/client/LoadClient.dll" "$1" 8 "$seconds"; } # port -> "msg/s p50 p99 errors messages"
    ;;
  dicom)
    rounds="${3:-7}" count="${4:-600}"
    export TCP_NODELAY=1
    dotnet build "$repo/bench/dicom/EchoBench" -c Release -o "$work/echo" -v q -nologo >/dev/null
    storescp --fork --ignore -aet PACS "$node" >/dev/null 2>&1 & pids+=($!)
    run() { dotnet "$work/echo/EchoBench.dll" 127.0.0.1 "$1" PACS "$count" 1; } # port -> "assoc/s median p90 setup associations"
    # The per-association path tiers up over the first ~3000 back-to-back associations (bench/dicom/run.sh says more).
    warm() { dotnet "$work/echo/EchoBench.dll" 127.0.0.1 "$1" PACS 5000 1; }
    ;;
  http)
    rounds="${3:-11}" seconds="${4:-3}"
    mkdir -p "$work/www/dicom-web" "$work/nginx"
    head -c 1536 /dev/urandom | base64 -w 0 | head -c 2048 >"$work/www/dicom-web/studies"
    cat >"$work/nginx/nginx.conf" <<CONF
$([[ $(id -u) == 0 ]] && echo "user root;")
worker_processes 1; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;
  server { listen 127.0.0.1:$node; root $work/www; keepalive_requests 1000000; } }
CONF
    (cd "$work/nginx" && exec nginx -c "$work/nginx/nginx.conf" -p "$work/nginx") >/dev/null 2>&1 & pids+=($!)
    run() { # port -> "req/s p50 p99 errors requests"
      wrk -t1 -c8 -d"${seconds}s" --latency "http://127.0.0.1:$1/dicom-web/studies" | python3 -c '
import re, sys
out = sys.stdin.read()
ms = lambda v: float(v[:-2]) * 1e-3 if v.endswith("us") else float(v[:-2]) if v.endswith("ms") else float(v[:-1]) * 1e3
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)) + sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
print(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1), ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
      ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)), errors, re.search(r"(\d+) requests in", out).group(1))'
    }
    ;;
  *) echo "unknown kind '$kind' (mllp, dicom or http)" >&2; exit 2 ;;
esac

read -r -a env_a <<< "${A_ENV:-}"
read -r -a env_b <<< "${B_ENV:-}"
env DOTNET_gcServer=1 "${env_a[@]}" dotnet "$work/a/ImagingProxy.Host.dll" --config "$work/config-a/proxy.json" >"$work/a.log" 2>&1 & pids+=($!); pid_a=$!
env DOTNET_gcServer=1 "${env_b[@]}" dotnet "$work/b/ImagingProxy.Host.dll" --config "$work/config-b/proxy.json" >"$work/b.log" 2>&1 & pids+=($!); pid_b=$!
wait_port "$node"; wait_port "$port_a"; wait_port "$port_b"
# warm-up: the runtime tiers the code up during the first traffic
if declare -F warm >/dev/null; then warm "$port_a" >/dev/null; warm "$port_b" >/dev/null; else run "$port_a" >/dev/null; run "$port_b" >/dev/null; fi

: >"$work/results"
measure() { # label port pid
  local u0 s0 u1 s1 line
  read -r u0 s0 < <(ticks "$3")
  line=$(run "$2")
  read -r u1 s1 < <(ticks "$3")
  echo "$1 $line $((u1 - u0)) $((s1 - s0))" | tee -a "$work/results" >&2
}
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then measure A "$port_a" "$pid_a"; measure B "$port_b" "$pid_b"
  else measure B "$port_b" "$pid_b"; measure A "$port_a" "$pid_a"; fi
done

python3 - "$work/results" "$kind" "$hz" "$ref" <<'PY'
import statistics, sys
path, kind, hz, ref = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
rows = {"A": [], "B": []}
for line in open(path):
    f = line.split()
    rate = float(f[1])
    n = float(f[5])  # every message or association of the run, the client's warm-up included (as the CPU ticks are)
    unit = 1e3 if kind == "dicom" else 1e6
    user, system = float(f[-2]) / hz * unit / n, float(f[-1]) / hz * unit / n
    extra = float(f[4]) if kind == "dicom" else float(f[2])
    rows[f[0]].append((rate, extra, user, system))
names = {"mllp": ("msg/s", "p50 ms", "user us/msg", "sys us/msg"), "http": ("req/s", "p50 ms", "user us/req", "sys us/req"),
         "dicom": ("assoc/s", "set-up ms", "user ms/assoc", "sys ms/assoc")}[kind]
higher_better = (True, False, False, False)
print(f"A = working tree, B = {ref}; {len(rows['A'])} paired runs; medians, and the pairs A won")
for i, name in enumerate(names):
    a = [r[i] for r in rows["A"]]; b = [r[i] for r in rows["B"]]
    wins = sum(1 for x, y in zip(a, b) if (x > y if higher_better[i] else x < y))
    print(f"{name:>14}  A {statistics.median(a):10.3f}  B {statistics.median(b):10.3f}  A/B {statistics.median(a) / statistics.median(b):6.3f}  A won {wins} of {len(a)}")
PY
