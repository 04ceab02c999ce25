#!/usr/bin/env bash
# The project's test command (the README's): vet, format check, then every
# test with the race detector, against real Kafka, PostgreSQL, HBase and S3 servers.
#
#   bash scripts/ci-test.sh
#
# It starts the servers itself when they are not up (scripts/services/up.sh is
# idempotent: a running server costs a few milliseconds), so this one command
# works on a fresh machine. CI=true is set when unset: a missing server then
# fails its tests instead of skipping them (see internal/testenv).
#   FLOWRUN_SKIP_SERVICES=1  do not start servers (integration tests then skip,
#                            or fail under CI=true)
#   FLOWRUN_KAFKA_BROKERS / POSTGRES_URL / FLOWRUN_POSTGRES_URL / HBASE_THRIFT_ADDR /
#   FLOWRUN_S3_ENDPOINT already set:
#                            that server is taken as given and not started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CI="${CI:-true}"
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

if [[ ${FLOWRUN_SKIP_SERVICES:-0} != 1 ]]; then
	services=()
	[[ -n ${FLOWRUN_KAFKA_BROKERS:-} ]] || services+=(kafka)
	[[ -n ${FLOWRUN_POSTGRES_URL:-}${POSTGRES_URL:-} ]] || services+=(postgres)
	[[ -n ${HBASE_THRIFT_ADDR:-} ]] || services+=(hbase)
	[[ -n ${FLOWRUN_S3_ENDPOINT:-} ]] || services+=(s3)
	if ((${#services[@]})); then
		echo "== services: ${services[*]}"
		env_lines="$(bash scripts/services/up.sh "${services[@]}")"
		eval "$env_lines"
		printf '%s\n' "$env_lines"
	fi
fi

# Prometheus, Chromium (Debian) and pre-commit (PyPI) for the monitoring and
# hook tests.
bash scripts/ci-tools.sh
# pip's scripts folder may not be on a bare PATH (CI's shell).
if ! command -v pre-commit >/dev/null 2>&1; then
	export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
fi

echo "== go vet ./..."
go vet ./...

echo "== gofmt -l"
# Same tree go itself sees: skip testdata, vendor and dirs starting with . or _.
unformatted="$(find . \( -name testdata -o -name vendor -o -name '.?*' -o -name '_*' \) -prune -o \
	-name '*.go' -type f -print0 | xargs -0 -r gofmt -l)"
if [[ -n $unformatted ]]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	printf '%s\n' "$unformatted" >&2
	exit 1
fi

# The slowest packages are named first: go test runs packages in the order
# given (-p of them at once, the number of CPUs), so tests/e2e (about 4 min of
# mostly waiting on servers and child processes) starts at once instead of
# after every other package, and overlaps them.
echo "== go test -race -count=1 -timeout 25m ./tests/e2e ./cmd/flowrun ./..."
go test -race -count=1 -timeout 25m ./tests/e2e ./cmd/flowrun ./...

# Tests that measure the process itself mean nothing under the race detector
# (it multiplies memory several times) and skip there; they run here once
# more without it. A few seconds: the peak-RSS test runs two child processes.
echo "== go test -count=1 (without -race) -run '^TestPeakRSSWithinBudget$' ./runtime/exec"
go test -count=1 -run '^TestPeakRSSWithinBudget$' -v ./runtime/exec
