#!/usr/bin/env bash
# An S3-compatible object store for tests: SeaweedFS ("weed server" with its
# S3 gateway) on 127.0.0.1:8333, anonymous access, data under
# $FLOWRUN_DATA/s3.
#
#   scripts/services/s3.sh up      build weed once (cached), start, wait until healthy
#   scripts/services/s3.sh status  exit 0 when the S3 port answers
#   scripts/services/s3.sh env     print the export lines tests read
#   scripts/services/s3.sh down    stop the server and remove its data
#
# SeaweedFS comes from the Go module proxy. `go install .../weed@version` is
# refused (its go.mod has a replace directive), so the module is downloaded,
# copied somewhere writable and built there: about 4-5 minutes on 2 cores,
# once; the 230 MB binary is cached under $FLOWRUN_CACHE/seaweedfs.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh's log
SERVICE=s3
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${FLOWRUN_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
MODULE=github.com/seaweedfs/seaweedfs
HOST=127.0.0.1
PORT="${FLOWRUN_S3_PORT:-8333}"
MASTER_PORT="${FLOWRUN_S3_MASTER_PORT:-19333}"
VOLUME_PORT="${FLOWRUN_S3_VOLUME_PORT:-18080}"
FILER_PORT="${FLOWRUN_S3_FILER_PORT:-18888}"
CACHE="$FLOWRUN_CACHE/seaweedfs"
BIN="$CACHE/weed-$VERSION"
DATA="$FLOWRUN_DATA/s3"
PIDFILE="$DATA/weed.pid"
LOGFILE="$DATA/weed.log"
START_TIMEOUT="${FLOWRUN_S3_START_TIMEOUT:-90}"

build() {
	[[ -x $BIN ]] && return 0
	command -v go >/dev/null 2>&1 || die "go is needed to build SeaweedFS"
	mkdir -p "$CACHE"
	log "downloading $MODULE@$VERSION from the Go module proxy"
	local dir
	dir=$(cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || die "go mod download gave no folder for $MODULE@$VERSION"
	local src="$CACHE/src-$VERSION"
	rm -rf "$src"
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	log "building weed (a few minutes, once; cached as $BIN)"
	(cd "$src" && nice -n 19 go build -o "$BIN.tmp" ./weed) >&2 || die "building weed failed"
	mv "$BIN.tmp" "$BIN"
	rm -rf "$src"
}

healthy() {
	port_open "$HOST" "$PORT" && curl -fsS -o /dev/null "http://$HOST:$PORT/" 2>/dev/null
}

cmd_up() {
	if pid_alive "$PIDFILE" weed && healthy; then
		log "already running at http://$HOST:$PORT"
		return 0
	fi
	if port_open "$HOST" "$PORT" && healthy; then
		log "an S3 server already answers at http://$HOST:$PORT (not started by this script)"
		return 0
	fi
	build
	local attempt
	for attempt in 1 2 3; do
		start_once && return 0
		log "start attempt $attempt failed; cleaning up and trying again"
		stop_weed
	done
	die "weed did not start after 3 attempts (log: $LOGFILE)"
}

# clean_leftovers removes what a killed weed leaves behind: its raft and
# volume state (tests create their own buckets, nothing here is kept across
# runs; a stale raft log once held a restarted master in "not current leader"
# for 20 s) and the unix sockets it creates in /tmp for its gRPC ports.
clean_leftovers() {
	rm -rf "$DATA/data"
	local port
	for port in "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$PORT"; do
		rm -f /tmp/seaweedfs-*-"$port".sock /tmp/seaweedfs-*-grpc-$((port + 10000)).sock
	done
}

# start_once starts weed and waits until the S3 port is healthy; false (with
# the log's tail on stderr) when weed exits or never becomes healthy.
start_once() {
	if ! pid_alive "$PIDFILE" weed; then
		clean_leftovers
	fi
	mkdir -p "$DATA/data"
	log "starting weed server (s3 :$PORT)"
	# setsid: the server outlives this script and its terminal.
	setsid "$BIN" server -ip="$HOST" -ip.bind="$HOST" -dir="$DATA/data" \
		-master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" -filer.port="$FILER_PORT" \
		-volume.max=0 -master.volumeSizeLimitMB=64 -master.telemetry=false \
		-s3 -s3.port="$PORT" >"$LOGFILE" 2>&1 </dev/null 9>&- &
	echo $! >"$PIDFILE"
	local t0=$SECONDS
	until healthy; do
		if ! pid_alive "$PIDFILE" weed; then
			log "weed exited while starting; the end of its log:"
			tail -30 "$LOGFILE" >&2
			return 1
		fi
		if ((SECONDS - t0 > START_TIMEOUT)); then
			log "S3 port not healthy after ${START_TIMEOUT}s; the end of weed's log:"
			tail -30 "$LOGFILE" >&2
			return 1
		fi
		sleep 0.5
	done
	log "healthy at http://$HOST:$PORT in $((SECONDS - t0))s"
}

stop_weed() {
	if pid_alive "$PIDFILE" weed; then
		local pid
		pid=$(<"$PIDFILE")
		log "stopping weed (pid $pid)"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$PIDFILE"
}

cmd_down() {
	stop_weed
	clean_leftovers
	rm -rf "$DATA"
	log "stopped"
}

cmd_status() {
	if healthy; then
		log "running at http://$HOST:$PORT"
		return 0
	fi
	log "not running"
	return 3
}

cmd_env() {
	echo "export FLOWRUN_S3_ENDPOINT='http://$HOST:$PORT'"
}

# One up or down at a time: a second `up` that found no server while the
# first was still building weed used to clean the data folder under the
# server the first one then started (its volumes could no longer grow; every
# upload failed with 500). The lock's descriptor is closed for weed itself.
lock() {
	mkdir -p "$FLOWRUN_DATA"
	exec 9>"$FLOWRUN_DATA/.s3.lock"
	flock 9
}

case "${1:-}" in
up) lock && cmd_up ;;
down) lock && cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*)
	echo "usage: $0 {up|down|status|env}" >&2
	exit 2
	;;
esac
