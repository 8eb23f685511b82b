#!/usr/bin/env bash
# Runs ImagingProxy with a working demo behind it: two Orthanc PACS nodes on loopback, seeded with sample
# studies, and the proxy in the foreground with appsettings/demo.json and a self-signed certificate.
#
#   scripts/demo.sh               run until Ctrl-C (stops the Orthanc nodes it started)
#   scripts/demo.sh --check       start everything in the background, check QIDO through the proxy and /status,
#                                 print PASS/FAIL, stop everything; exit 0 only if every check passed
#   scripts/demo.sh --check --peers-only   the same for the two Orthanc nodes alone (no proxy)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

mode=run peers_only=0
for arg in "$@"; do
  case "$arg" in
    --check) mode=check ;;
    --peers-only) peers_only=1 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# Ports fixed by appsettings/demo.json.
node_a=(ORTHANC_A 4242 8042)
node_b=(ORTHANC_B 4243 8043)
declare -A proxy_ports=([8443]="proxy Viewers (HTTPS)" [17035]="proxy XDS" [9901]="proxy Admin" [11112]="proxy DICOM" [2575]="proxy MLLP")
config="appsettings/demo.json"

demo="$repo/.demo"
logs="$demo/logs"
pids=()
proxy_pid=""

say() { echo "demo: $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

# Running and not a zombie: our own children stay zombies (kill -0 succeeds) until this script reaps them.
alive() { local _p _c state; [[ -r "/proc/$1/stat" ]] && read -r _p _c state _ <"/proc/$1/stat" && [[ "$state" != Z ]]; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$proxy_pid" ]]; then
    # The proxy runs in its own process group (setsid): `dotnet run` and the app it started.
    kill -TERM -- "-$proxy_pid" 2>/dev/null || true
    for _ in {1..100}; do alive "$proxy_pid" || break; sleep 0.1; done
    kill -KILL -- "-$proxy_pid" 2>/dev/null || true
  fi
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in {1..100}; do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  ((${#pids[@]} == 0)) || say "stopped the Orthanc nodes (pids ${pids[*]})"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
require_free() {
  if port_busy "$1"; then
    die "port $1 ($2) is already in use on 127.0.0.1. Stop what listens there (ss -ltnp 'sport = :$1') or an earlier demo, then retry."
  fi
}

bash scripts/install-peers.sh

require_free "${node_a[1]}" "Orthanc ${node_a[0]} DICOM"
require_free "${node_a[2]}" "Orthanc ${node_a[0]} HTTP"
require_free "${node_b[1]}" "Orthanc ${node_b[0]} DICOM"
require_free "${node_b[2]}" "Orthanc ${node_b[0]} HTTP"
if ((!peers_only)); then
  [[ -f "$config" ]] || die "$config (the proxy's demo configuration) is missing"
  for port in "${!proxy_ports[@]}"; do require_free "$port" "${proxy_ports[$port]}"; done
fi

mkdir -p "$demo/tls" "$logs"

# Self-signed certificate for the Viewers endpoint (PEM, unencrypted key), made once and kept until it expires.
crt="$demo/tls/proxy.crt" key="$demo/tls/proxy.key"
if ! [[ -s "$crt" && -s "$key" ]] || ! openssl x509 -checkend 86400 -noout -in "$crt" >/dev/null 2>&1; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 365 \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$key" -out "$crt" >"$logs/openssl.log" 2>&1 || { cat "$logs/openssl.log" >&2; die "openssl could not make the certificate"; }
  chmod 600 "$key"
  say "made a self-signed certificate for localhost/127.0.0.1: $crt"
fi

start_orthanc() { # AET DICOM_PORT HTTP_PORT
  local aet="$1" dicom="$2" http="$3" dir="$demo/orthanc-${1#ORTHANC_}"
  dir="${dir,,}"
  rm -rf "$dir/db"
  mkdir -p "$dir/db"
  cat >"$dir/orthanc.json" <<JSON
{
  "Name": "$aet",
  "DicomAet": "$aet",
  "DicomPort": $dicom,
  "HttpPort": $http,
  "StorageDirectory": "$dir/db",
  "IndexDirectory": "$dir/db",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomCheckCalledAet": false,
  "DicomAlwaysAllowEcho": true,
  "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowFind": true,
  "DicomAlwaysAllowGet": true,
  "DicomAlwaysAllowMove": true,
  "SaveJobs": false,
  "Plugins": ["/usr/share/orthanc/plugins"],
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/" }
}
JSON
  # Orthanc leaves Nagle on without TCP_NODELAY=1. Own session, so Ctrl-C reaches only this script, which stops it.
  TCP_NODELAY=1 setsid /usr/sbin/Orthanc "$dir/orthanc.json" >"$logs/${dir##*/}.log" 2>&1 &
  pids+=($!)
  say "started Orthanc $aet (pid $!, DICOM 127.0.0.1:$dicom, HTTP http://127.0.0.1:$http/, log $logs/${dir##*/}.log)"
}

wait_http() { # URL PID SECONDS: until the URL answers 2xx; fails when PID exits or time runs out
  local url="$1" pid="$2" seconds="$3"
  local deadline=$((SECONDS + seconds))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    alive "$pid" || return 1
    ((SECONDS < deadline)) || return 2
    sleep 0.2
  done
}

start_orthanc "${node_a[@]}"
start_orthanc "${node_b[@]}"
wait_orthanc() { # AET HTTP_PORT PID
  local name="${1#ORTHANC_}"
  local log="$logs/orthanc-${name,,}.log"
  wait_http "http://127.0.0.1:$2/system" "$3" 30 || { tail -n 20 "$log" >&2; die "Orthanc $1 did not come up on 127.0.0.1:$2 (log $log)"; }
}
wait_orthanc "${node_a[0]}" "${node_a[2]}" "${pids[0]}"
wait_orthanc "${node_b[0]}" "${node_b[2]}" "${pids[1]}"

# Sample studies: two CT instances of one study on A, one CT study on B, sent with storescu over DICOM.
samples="$demo/samples"
rm -rf "$samples"
mapfile -t files_a < <(bash tests/data/dicom/make-sample.sh "$samples/a" 2 DEMO-A "Demo CT on A")
mapfile -t files_b < <(bash tests/data/dicom/make-sample.sh "$samples/b" 1 DEMO-B "Demo CT on B")
TCP_NODELAY=1 storescu -R -aec "${node_a[0]}" 127.0.0.1 "${node_a[1]}" "${files_a[@]}" >"$logs/storescu.log" 2>&1 || die "storescu to ${node_a[0]} failed (see $logs/storescu.log)"
TCP_NODELAY=1 storescu -R -aec "${node_b[0]}" 127.0.0.1 "${node_b[1]}" "${files_b[@]}" >>"$logs/storescu.log" 2>&1 || die "storescu to ${node_b[0]} failed (see $logs/storescu.log)"
say "stored ${#files_a[@]} sample instance(s) in ${node_a[0]} and ${#files_b[@]} in ${node_b[0]} (files in $samples)"

sample_file="${files_a[0]}"
tries() {
  cat <<TRY

Try (with the proxy up):
  curl -k https://127.0.0.1:8443/dicom-web/studies     # QIDO-RS through the proxy
  curl http://127.0.0.1:9901/status                    # proxy status
  echoscu -aec PACS 127.0.0.1 11112                    # C-ECHO through the proxy
  storescu -aec PACS 127.0.0.1 11112 $sample_file
Orthanc directly: http://127.0.0.1:${node_a[2]}/dicom-web/studies and http://127.0.0.1:${node_b[2]}/dicom-web/studies
Logs: $logs
TRY
}

proxy_cmd=(dotnet run --project src/ImagingProxy.Host -c Release -- --config "$repo/$config"
  "--Kestrel:Endpoints:Viewers:Certificate:Path=$crt" "--Kestrel:Endpoints:Viewers:Certificate:KeyPath=$key")

if [[ $mode == run ]]; then
  tries
  say "starting the proxy (Ctrl-C stops it and the Orthanc nodes)"
  echo
  # Own process group so that the trap can stop `dotnet run` together with the app it starts.
  setsid "${proxy_cmd[@]}" &
  proxy_pid=$!
  wait "$proxy_pid" || exit $?
  exit 0
fi

# --check
failures=0
check() { # NAME COMMAND...
  local name="$1"
  shift
  if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
study_a="$(dcmdump -s +P StudyInstanceUID "${files_a[0]}" | sed -n 's/.*\[\(.*\)\].*/\1/p' | tr -d '\0')"
study_b="$(dcmdump -s +P StudyInstanceUID "${files_b[0]}" | sed -n 's/.*\[\(.*\)\].*/\1/p' | tr -d '\0')"
qido_has() { # URL STUDY_UID... (passes when the answer lists one of them)
  local url="$1" body
  shift
  body="$(curl -fsS -k --max-time 10 -H 'Accept: application/dicom+json' "$url")" || return 1
  local uid
  for uid in "$@"; do [[ "$body" == *"$uid"* ]] && return 0; done
  return 1
}
check "Orthanc ${node_a[0]}: QIDO /dicom-web/studies lists the sample study" qido_has "http://127.0.0.1:${node_a[2]}/dicom-web/studies" "$study_a"
check "Orthanc ${node_b[0]}: QIDO /dicom-web/studies lists the sample study" qido_has "http://127.0.0.1:${node_b[2]}/dicom-web/studies" "$study_b"

if ((!peers_only)); then
  say "building and starting the proxy (log $logs/proxy.log)"
  setsid "${proxy_cmd[@]}" >"$logs/proxy.log" 2>&1 &
  proxy_pid=$!
  if wait_http "http://127.0.0.1:9901/readyz" "$proxy_pid" 240; then
    check "proxy: GET http://127.0.0.1:9901/status" curl -fsS -o /dev/null --max-time 10 http://127.0.0.1:9901/status
    check "proxy: QIDO https://127.0.0.1:8443/dicom-web/studies lists a sample study" qido_has "https://127.0.0.1:8443/dicom-web/studies" "$study_a" "$study_b"
  else
    echo "FAIL proxy: did not answer http://127.0.0.1:9901/status (last lines of $logs/proxy.log:)"
    tail -n 20 "$logs/proxy.log" | sed 's/^/  /'
    failures=$((failures + 1))
  fi
fi

if ((failures == 0)); then echo "demo check: PASS"; else echo "demo check: FAIL ($failures failed)"; fi
((failures == 0))
