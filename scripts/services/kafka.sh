#!/usr/bin/env bash
# Apache Kafka 4.x for tests: one KRaft node that is both broker and
# controller, bound to 127.0.0.1, installed from Maven Central.
#
#   scripts/services/kafka.sh up      install (cached), format once, start, wait until healthy
#   scripts/services/kafka.sh status  exit 0 when healthy, 3 when not running
#   scripts/services/kafka.sh env     print `export FLOWRUN_KAFKA_BROKERS=...`
#   scripts/services/kafka.sh down    stop it and remove its data dir
#   scripts/services/kafka.sh stop    stop it cleanly, keeping its data
#   scripts/services/kafka.sh start   start it again on the data `stop` kept
#
# Knobs (env): FLOWRUN_KAFKA_VERSION (default below), FLOWRUN_KAFKA_PORT (9092),
# FLOWRUN_KAFKA_CONTROLLER_PORT (9093), FLOWRUN_KAFKA_HEAP (512m),
# FLOWRUN_DATA (/tmp/flowrun-services), FLOWRUN_CACHE (~/.cache/flowrun).
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh's log
SERVICE=kafka
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${FLOWRUN_KAFKA_VERSION:-4.4.0}"
HOST=127.0.0.1
PORT="${FLOWRUN_KAFKA_PORT:-9092}"
CPORT="${FLOWRUN_KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${FLOWRUN_KAFKA_HEAP:-512m}"
POM="$SERVICES_DIR/kafka/pom.xml"
# The lib dir is keyed by version and by the pom's content, so editing the
# pom (say, adding a jar) never reuses a stale lib dir.
POM_SUM="$(sha256sum "$POM" | cut -c1-10)"
INSTALL="$FLOWRUN_CACHE/kafka-$VERSION-$POM_SUM"
LIB="$INSTALL/lib"
DATA="$FLOWRUN_DATA/kafka"
LOGS="$DATA/log"          # the broker's own log files (server.log, ...)
PIDFILE="$DATA/kafka.pid"
CONFIG="$DATA/server.properties"
BROKERS="$HOST:$PORT"
START_TIMEOUT="${FLOWRUN_KAFKA_START_TIMEOUT:-240}"

install_libs() {
	[[ -f $LIB/.complete ]] && return 0
	command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
	need_cmd mvn maven
	log "fetching Kafka $VERSION jars from Maven Central into $LIB (~45 MB, cached in ~/.m2)"
	local t0=$SECONDS tmp="$LIB.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$INSTALL"
	if ! mvn -B -q -f "$POM" -Dkafka.version="$VERSION" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$INSTALL/mvn.log" 2>&1; then
		tail -40 "$INSTALL/mvn.log" >&2
		die "mvn dependency:copy-dependencies failed (version $VERSION, log $INSTALL/mvn.log)"
	fi
	ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $tmp"
	rm -rf "$LIB"
	mv "$tmp" "$LIB"
	touch "$LIB/.complete"
	log "jars ready in $((SECONDS - t0))s"
}

write_config() {
	mkdir -p "$DATA" "$LOGS"
	cat >"$CONFIG" <<PROPS
# Written by scripts/services/kafka.sh; regenerated on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/kraft-logs
num.partitions=4
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# 2 cores shared with \`go test -race\`: a starved heartbeat must not fence
# the broker from its own controller (default 9s).
broker.session.timeout.ms=60000
num.network.threads=2
num.io.threads=4
log.retention.hours=24
PROPS
	cat >"$DATA/log4j2.properties" <<PROPS
# Written by scripts/services/kafka.sh: the broker logs to $LOGS/server.log.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $LOGS/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS
}

JAVA=(java -Xmx"$HEAP" -Xms64m -XX:+UseG1GC -Djava.awt.headless=true
	-Dlog4j2.configurationFile="$DATA/log4j2.properties" -Dkafka.logs.dir="$LOGS" -cp "$LIB/*")

java_cmd() { "${JAVA[@]}" "$@"; }

format_storage() {
	[[ -f $DATA/kraft-logs/meta.properties ]] && return 0
	# A cluster id is what `kafka-storage random-uuid` prints: 16 random bytes,
	# base64url without padding (22 chars), never starting with '-'. Made here
	# to save a JVM start.
	local id=-
	while [[ $id == -* ]]; do
		id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
	done
	log "formatting $DATA/kraft-logs (cluster id $id)"
	java_cmd kafka.tools.StorageTool format --ignore-formatted -t "$id" -c "$CONFIG" \
		>>"$LOGS/storage-tool.log" 2>&1 || { tail -20 "$LOGS/storage-tool.log" >&2; die "storage format failed"; }
}

# healthy: the port answers and a real metadata request lists our broker.
healthy() {
	port_open "$HOST" "$PORT" || return 1
	if command -v kcat >/dev/null 2>&1; then
		kcat -L -b "$BROKERS" -m 5 2>/dev/null | grep -q '1 brokers:'
	else
		grep -q 'Kafka Server started' "$LOGS/server.log" 2>/dev/null
	fi
}

running() { pid_alive "$PIDFILE" kafka.Kafka; }

cmd_up() {
	local keep=${1:-0} # 1: start on the data a clean stop left (no wipe)
	if running && healthy; then
		log "already running (pid $(<"$PIDFILE")) at $BROKERS"
		return 0
	fi
	need_cmd kcat kcat
	if ! running; then
		# Leftovers of a broker that is gone (killed with its session, say) are
		# wiped: a KRaft node restarted on them waits out its old broker session
		# (broker.session.timeout.ms) before serving, and tests want a clean
		# broker anyway.
		if [[ -e $DATA && $keep != 1 ]]; then
			log "removing leftovers of a stopped broker in $DATA"
			rm -rf "$DATA"
		fi
		if port_open "$HOST" "$PORT" || port_open "$HOST" "$CPORT"; then
			die "port $PORT or $CPORT on $HOST is taken by a process this script did not start"
		fi
		rm -f "$PIDFILE"
		install_libs
		write_config
		format_storage
		log "starting Kafka $VERSION (KRaft, node 1) on $BROKERS, data in $DATA"
		# setsid+nohup: the broker outlives this shell and its process group.
		# shellcheck disable=SC2016 # $$ is the inner shell's pid, on purpose
		setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
			"${JAVA[@]}" kafka.Kafka "$CONFIG" </dev/null >>"$LOGS/kafka.out" 2>&1 &
		local i
		for ((i = 0; i < 50; i++)); do [[ -s $PIDFILE ]] && break; sleep 0.1; done
	fi
	local t0=$SECONDS
	until healthy; do
		if ! running; then
			tail -30 "$LOGS/kafka.out" "$LOGS/server.log" >&2 2>/dev/null || true
			die "broker exited during start-up (logs: $LOGS)"
		fi
		if ((SECONDS - t0 > START_TIMEOUT)); then
			tail -30 "$LOGS/server.log" >&2 2>/dev/null || true
			die "not healthy after ${START_TIMEOUT}s (logs: $LOGS)"
		fi
		sleep 0.5
	done
	log "healthy at $BROKERS (pid $(<"$PIDFILE"), ready in $((SECONDS - t0))s)"
}

cmd_down() {
	cmd_stop
	rm -rf "$DATA"
	log "removed $DATA"
}

# cmd_stop stops the broker cleanly and keeps its data, so `start` brings the
# same cluster back with every acknowledged message (outage tests).
cmd_stop() {
	if running; then
		local pid i
		pid=$(<"$PIDFILE")
		log "stopping pid $pid"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "still running after 30s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
	fi
	log "stopped"
}

cmd_status() {
	if running && healthy; then
		log "running (pid $(<"$PIDFILE")) at $BROKERS, version $VERSION, data $DATA"
		return 0
	elif running; then
		log "process $(<"$PIDFILE") is up but $BROKERS is not healthy (yet)"
		return 1
	fi
	log "not running"
	return 3
}

cmd_env() {
	echo "export FLOWRUN_KAFKA_BROKERS=$BROKERS"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
stop) cmd_stop ;;
start) cmd_up 1 ;;
status) cmd_status ;;
env) cmd_env ;;
*)
	echo "usage: $0 {up|down|stop|start|status|env}" >&2
	exit 2
	;;
esac
