#!/usr/bin/env bash
# Installs the real third-party peers that the tests and the demo talk to (all from Debian).
# Idempotent: when every peer is already present it does nothing and prints nothing.
# Otherwise it runs `apt-get update` once and installs the packages whose checks failed.
set -euo pipefail

# package -> how we know it is there (a command name, or a path, or a small probe).
declare -A check=(
  [dcmtk]="cmd:storescu cmd:storescp cmd:echoscu cmd:findscu cmd:movescu cmd:dcmqrscp cmd:dump2dcm cmd:img2dcm"
  [orthanc]="file:/usr/sbin/Orthanc"
  [orthanc-dicomweb]="file:/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
  [haproxy]="file:/usr/sbin/haproxy"
  [nginx]="file:/usr/sbin/nginx"
  [wrk]="cmd:wrk"
  [python3-hl7]="py:hl7"
  # A real SOAP client (SOAP 1.1 and 1.2) for the XDS fault tests.
  [python3-zeep]="py:zeep"
  [prometheus]="cmd:prometheus"
  [socat]="cmd:socat"
  [openssl]="cmd:openssl"
  [curl]="cmd:curl"
  # Only when no kubectl exists: images that ship another `kubectl` package own /usr/bin/kubectl,
  # and Debian's kubernetes-client would then fail to unpack over it.
  [kubernetes-client]="cmd:kubectl"
)
order=(dcmtk orthanc orthanc-dicomweb haproxy nginx wrk python3-hl7 python3-zeep prometheus socat openssl curl kubernetes-client)

present() {
  local probe
  for probe in $1; do
    case "$probe" in
      cmd:*) command -v "${probe#cmd:}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${probe#cmd:}" ]] || return 1 ;;
      file:*) [[ -e "${probe#file:}" ]] || return 1 ;;
      # Debian's interpreter: the python3 first on PATH may be another install without Debian's modules.
      py:*) [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c "import ${probe#py:}" >/dev/null 2>&1 || return 1 ;;
    esac
  done
}

missing=()
for pkg in "${order[@]}"; do
  present "${check[$pkg]}" || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null 2>&1 || { echo "install-peers: not root and no sudo; install as root: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo -n)
fi

log="$(mktemp -t install-peers.XXXXXX.log)"
echo "install-peers: installing ${missing[*]} (log: $log)"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq >>"$log" 2>&1; then
  echo "install-peers: apt-get update failed; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  echo "install-peers: apt-get install ${missing[*]} failed; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi

still=()
for pkg in "${missing[@]}"; do
  present "${check[$pkg]}" || still+=("$pkg")
done
if ((${#still[@]} > 0)); then
  echo "install-peers: installed, but still not usable: ${still[*]} (log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "install-peers: done"
