#!/usr/bin/env bash
# DICOM TLS to the node (a script, not a test): C-STORE of MG-like 26 MB files over one association, side by side in
# one run on loopback, plain and with TLS from the proxy to the node:
#   plain-direct   storescu -> storescp
#   plain-proxy    storescu -> ImagingProxy -> storescp                 (tcp:// destination)
#   plain-haproxy  storescu -> HAProxy mode tcp -> storescp
#   tls-direct     storescu +tls -> storescp +tls
#   tls-proxy      storescu -> ImagingProxy -> storescp +tls            (tls:// destination, client certificate)
#   tls-haproxy    storescu -> HAProxy mode tcp, server ... ssl verify required crt ... -> storescp +tls
# storescp +tls requires and verifies the client's certificate (dcmtk's default), as DICOM TLS nodes do. Certificates
# come from a throw-away CA made with openssl. Targets run interleaved for ROUNDS rounds; medians are printed with the
# proxies' CPU per run (from /proc). storescp runs with --ignore (receives everything, writes nothing).
#
# usage: bench/dicom/tls.sh [ROUNDS=3] [MG_COUNT=4]
set -euo pipefail
export TCP_NODELAY=1
rounds="${1:-3}" count="${2:-4}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d /tmp/imagingproxy-tls-bench-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
ticks() { if [[ $1 == 0 ]]; then echo "0 0"; else awk '{print $14, $15}' "/proc/$1/stat"; fi; }

echo "== building (Release)" >&2
dotnet build "$repo/src/ImagingProxy.Host/ImagingProxy.Host.csproj" -c Release -v q -nologo >&2
host_dll="$repo/src/ImagingProxy.Host/bin/Release/net10.0/ImagingProxy.Host.dll"

echo "== certificates (a CA, the node's, the proxy's client certificate)" >&2
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=Bench CA" 2>/dev/null
issue() { # name extensions
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf '%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
}
issue node "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue proxy "extendedKeyUsage=clientAuth"
cat proxy.crt proxy.key > proxy.pem

echo "== generating $count MG (26 MB) files" >&2
mkdir -p MG
study="2.25.$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"
for ((i = 1; i <= count; i++)); do
  stem="MG/MG$i"
  head -c $((6656 * 2048 * 2)) /dev/urandom > "$stem.raw"
  sed -e "s|@SOP_CLASS_UID@|1.2.840.10008.5.1.4.1.1.1.2|" -e "s|@SOP_INSTANCE_UID@|$study.1.$i|" -e "s|@STUDY_INSTANCE_UID@|$study|" \
      -e "s|@SERIES_INSTANCE_UID@|$study.1|" -e "s|@STUDY_DATE@|$(date -u +%Y%m%d)|" -e "s|@ACCESSION@|B$i|" -e "s|@MODALITY@|MG|" \
      -e "s|@STUDY_DESCRIPTION@|Bench MG|" -e "s|@PATIENT_NAME@|Bench^MG|" -e "s|@PATIENT_ID@|BENCH|" -e "s|@INSTANCE_NUMBER@|$i|" \
      -e "s|@ROWS@|6656|" -e "s|@COLUMNS@|2048|" -e "s|@PIXEL_FILE@|$stem.raw|" "$repo/tests/data/dicom/image.dump.in" > "$stem.dump"
  dump2dcm -q "$stem.dump" "$stem.dcm"
  rm -f "$stem.raw" "$stem.dump"
done
files=(MG/*.dcm)
megabytes=$(du -cb "${files[@]}" | tail -1 | awk '{print $1 / 1e6}')

plain_port="$(free_port)" tls_port="$(free_port)" proxy_port="$(free_port)" ha_plain="$(free_port)" ha_tls="$(free_port)"
mkdir -p config
cat > config/proxy.json <<JSON
{ "Logging": { "LogLevel": { "Default": "Warning" } },
  "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
  "ReverseProxy": { "Routes": {}, "Clusters": {
    "tls": { "Metadata": { "Protocol": "Dicom", "Tls.CaPath": "$work/ca.crt", "Tls.ClientCertificatePath": "$work/proxy.crt", "Tls.ClientKeyPath": "$work/proxy.key" },
             "Destinations": { "n1": { "Address": "tls://127.0.0.1:$tls_port" } } },
    "plain": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "n1": { "Address": "tcp://127.0.0.1:$plain_port" } } } } },
  "ImagingProxy": { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": $proxy_port } },
    "Routes": { "tls": { "CalledAeTitle": "TLS", "Cluster": "tls" }, "plain": { "CalledAeTitle": "*", "Cluster": "plain" } } } } }
JSON
cat > haproxy.cfg <<CFG
global
  maxconn 1000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
frontend plain
  bind 127.0.0.1:$ha_plain
  default_backend plain
frontend tls
  bind 127.0.0.1:$ha_tls
  default_backend tls
backend plain
  server n1 127.0.0.1:$plain_port
backend tls
  server n1 127.0.0.1:$tls_port ssl verify required ca-file $work/ca.crt crt $work/proxy.pem sni str(localhost)
CFG

storescp --ignore -aet PACS "$plain_port" > storescp-plain.log 2>&1 & pids+=($!)
storescp --ignore -aet PACS +tls node.key node.crt +cf ca.crt "$tls_port" > storescp-tls.log 2>&1 & pids+=($!)
dotnet "$host_dll" --config config/proxy.json > proxy.log 2>&1 & pids+=($!); proxy_pid=$!
haproxy -db -f haproxy.cfg > haproxy.log 2>&1 & pids+=($!); haproxy_pid=$!
for port in "$plain_port" "$proxy_port" "$ha_plain" "$ha_tls"; do wait_port "$port"; done
sleep 1 # storescp +tls: its port is open before it serves (probing it with a plain connect would only log a TLS error)

targets=(plain-direct plain-proxy plain-haproxy tls-direct tls-proxy tls-haproxy)
declare -A command=(
  [plain-direct]="storescu -aec PACS 127.0.0.1 $plain_port"
  [plain-proxy]="storescu -aec PACS 127.0.0.1 $proxy_port"
  [plain-haproxy]="storescu -aec PACS 127.0.0.1 $ha_plain"
  [tls-direct]="storescu +tls proxy.key proxy.crt +cf ca.crt -aec PACS 127.0.0.1 $tls_port"
  [tls-proxy]="storescu -aec TLS 127.0.0.1 $proxy_port"
  [tls-haproxy]="storescu -aec PACS 127.0.0.1 $ha_tls")
declare -A cpu_pid=([plain-direct]=0 [plain-proxy]=$proxy_pid [plain-haproxy]=$haproxy_pid [tls-direct]=0 [tls-proxy]=$proxy_pid [tls-haproxy]=$haproxy_pid)
# Warm-up: a .NET process compiles its per-association code again, optimised, after some 30 associations (tiered
# JIT); before that the compiler's thread takes up to half of the proxy's CPU. Then every file once per target.
echo "== warm-up (40 C-ECHO associations each way through the proxy, then every file once per target)" >&2
for _ in $(seq 40); do echoscu -aec TLS 127.0.0.1 "$proxy_port"; echoscu -aec PACS 127.0.0.1 "$proxy_port"; done
for target in "${targets[@]}"; do ${command[$target]} "${files[@]}"; done
hz=$(getconf CLK_TCK)
: > results.txt
for round in $(seq "$rounds"); do
  for target in "${targets[@]}"; do
    read -r u0 s0 < <(ticks "${cpu_pid[$target]}")
    start=$(date +%s.%N)
    ${command[$target]} "${files[@]}"
    end=$(date +%s.%N)
    read -r u1 s1 < <(ticks "${cpu_pid[$target]}")
    echo "$round $target $start $end $((u1 - u0)) $((s1 - s0))" | tee -a results.txt >&2
  done
done

python3 - results.txt "$megabytes" "$hz" "$rounds" "$count" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
mb, hz = float(sys.argv[2]), float(sys.argv[3])
def med(target, f):
    return statistics.median(f(r) for r in rows if r[1] == target)
rate = {t: med(t, lambda r: mb / (float(r[3]) - float(r[2]))) for t in {r[1] for r in rows}}
print(f"DICOM C-STORE, {sys.argv[5]} MG files (26 MB) per association, {sys.argv[4]} rounds, medians")
print(f"{'target':<14} {'MB/s':>7} {'x direct':>9} {'x HAProxy':>10} {'proxy CPU s/GB':>15}")
for t in ("plain-direct", "plain-proxy", "plain-haproxy", "tls-direct", "tls-proxy", "tls-haproxy"):
    kind = t.split("-")[0]
    cpu = med(t, lambda r: (int(r[4]) + int(r[5])) / hz / mb * 1000)
    print(f"{t:<14} {rate[t]:>7.1f} {rate[t] / rate[kind + '-direct']:>9.2f} {rate[t] / rate[kind + '-haproxy']:>10.2f} {cpu:>15.2f}")
PY
