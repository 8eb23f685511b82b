#!/usr/bin/env bash
# The test command: installs the real peers (Debian), builds and runs every test project of ImagingProxy.sln,
# and ends with one summary line `tests: N passed, M failed[, K skipped]`. Exit code 0 only when the build
# succeeded, at least one test ran and none failed. Extra arguments go to `dotnet test` (e.g. --filter ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-peers.sh

export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
log="artifacts/test.log"
mkdir -p artifacts

started=$SECONDS
set +e
# --blame-hang-timeout: a test that makes no progress for 5 minutes (the longest take about 90 s) is stopped and named,
# so a hang fails the run instead of holding CI until its own limit.
dotnet test ImagingProxy.sln -c Release --nologo -v quiet --logger "console;verbosity=minimal" \
  --blame-hang-timeout 5m --blame-hang-dump-type none "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# Sum the per-project summaries: "Passed!  - Failed:     0, Passed:    15, Skipped:     0, Total:    15, ...".
# (Console lines rather than TRX files: parallel projects finishing in the same second overwrite each other's TRX.)
read -r passed failed skipped projects < <(sed -nE 's/^(Passed|Failed)! +- Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+), Total:.*/\3 \2 \4/p' "$log" |
  awk '{p += $1; f += $2; s += $3; n++} END {printf "%d %d %d %d\n", p, f, s, n}')

status=0
if ((rc != 0)); then
  ((failed > 0)) || echo "test.sh: dotnet test exited with $rc (build failure or crashed test host; see above)" >&2
  status=1
fi
if ((failed > 0)); then
  status=1
fi
if ((passed + failed == 0)); then
  echo "test.sh: no test ran ($projects test projects reported)" >&2
  status=1
fi

echo "test.sh: $((SECONDS - started)) s for build and tests of $projects projects; log in $log" >&2
if ((skipped > 0)); then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "tests: $passed passed, $failed failed"
fi
exit "$status"
