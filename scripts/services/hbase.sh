#!/usr/bin/env bash
# Apache HBase 2.6.1 for tests: standalone (master, region server and
# ZooKeeper in one JVM on the local filesystem) plus both gateways HBase ships,
# Thrift2 and REST, all bound to 127.0.0.1, jars from Maven Central (JDK 17).
#
#   scripts/services/hbase.sh up      install (cached), start master → thrift2 → rest, wait until healthy
#   scripts/services/hbase.sh status  exit 0 when all three are healthy, 3 when not running
#   scripts/services/hbase.sh env     print `export HBASE_THRIFT_ADDR=... HBASE_REST_URL=...`
#   scripts/services/hbase.sh stop    stop all three cleanly, keeping the data
#   scripts/services/hbase.sh start   start again on the data `stop` kept
#   scripts/services/hbase.sh down    stop and remove the data dir
#
# Knobs (env): FLOWRUN_HBASE_THRIFT_PORT (9090), FLOWRUN_HBASE_REST_PORT (8080),
# FLOWRUN_HBASE_MASTER_HEAP (2g), FLOWRUN_HBASE_GATEWAY_HEAP (256m),
# FLOWRUN_HBASE_JAVA (a JDK 17 java), FLOWRUN_DATA, FLOWRUN_CACHE.
# ZooKeeper 2181, master RPC 16000 and region server RPC 16020 are fixed in
# 2.6 standalone mode; they must be free.
#
# The recipe and its pitfalls (partial Maven mirror, servlet-api clash, JDK 17
# flags, slow SIGTERM stop) are described in docs/hbase.md.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh's log
SERVICE=hbase
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=2.6.1
HOST=127.0.0.1
THRIFT_PORT="${FLOWRUN_HBASE_THRIFT_PORT:-9090}"
REST_PORT="${FLOWRUN_HBASE_REST_PORT:-8080}"
ZK_PORT=2181
MASTER_HEAP="${FLOWRUN_HBASE_MASTER_HEAP:-2g}"
GATEWAY_HEAP="${FLOWRUN_HBASE_GATEWAY_HEAP:-256m}"
START_TIMEOUT="${FLOWRUN_HBASE_START_TIMEOUT:-240}"
RECIPE="$SERVICES_DIR/hbase"
POM="$RECIPE/pom.xml"
POM_SUM="$(sha256sum "$POM" | cut -c1-10)"
INSTALL="$FLOWRUN_CACHE/hbase-$VERSION-$POM_SUM"
LIB="$INSTALL/lib"
DATA="$FLOWRUN_DATA/hbase"
CONF="$DATA/conf"
LOGS="$DATA/logs"
RUN="$DATA/run"

# Hadoop 2.10's UGI calls Subject.getSubject, which JDK 23+ refuses: use 17.
pick_java() {
	if [[ -n ${FLOWRUN_HBASE_JAVA:-} ]]; then echo "$FLOWRUN_HBASE_JAVA"; return; fi
	local j
	for j in /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk*/bin/java; do
		[[ -x $j ]] && { echo "$j"; return; }
	done
	echo java
}
JAVA="$(pick_java)"

# The flag set HBase 2.6 itself uses on JDK 17. REST dies at start-up without
# java.lang opened; the master loses the Unsafe fast paths without java.nio.
JDK17_OPTS=(
	-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
	--add-modules jdk.unsupported
	--add-opens java.base/java.io=ALL-UNNAMED
	--add-opens java.base/java.nio=ALL-UNNAMED
	--add-opens java.base/sun.nio.ch=ALL-UNNAMED
	--add-opens java.base/java.lang=ALL-UNNAMED
	--add-opens java.base/jdk.internal.ref=ALL-UNNAMED
	--add-opens java.base/java.lang.reflect=ALL-UNNAMED
	--add-opens java.base/java.util=ALL-UNNAMED
	--add-opens java.base/java.util.concurrent=ALL-UNNAMED
	--add-exports java.base/jdk.internal.misc=ALL-UNNAMED
	--add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
	--add-exports java.base/sun.net.dns=ALL-UNNAMED
	--add-exports java.base/sun.net.util=ALL-UNNAMED
)
COMMON_OPTS=(-XX:+UseG1GC -Djava.net.preferIPv4Stack=true -Djava.awt.headless=true
	-Dlog4j2.configurationFile="$CONF/log4j2.properties")

declare -A CLASS=(
	[master]=org.apache.hadoop.hbase.master.HMaster
	[thrift2]=org.apache.hadoop.hbase.thrift2.ThriftServer
	[rest]=org.apache.hadoop.hbase.rest.RESTServer
)

install_libs() {
	[[ -f $LIB/.complete ]] && return 0
	command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
	need_cmd mvn maven
	log "fetching HBase $VERSION jars from Maven Central into $LIB (~112 MB, cached in ~/.m2)"
	local t0=$SECONDS tmp="$LIB.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$INSTALL"
	if ! mvn -B -q -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp" >"$INSTALL/mvn.log" 2>&1; then
		tail -40 "$INSTALL/mvn.log" >&2
		die "mvn dependency:copy-dependencies failed (log $INSTALL/mvn.log)"
	fi
	ls "$tmp"/hbase-thrift-*.jar "$tmp"/hbase-rest-*.jar >/dev/null 2>&1 || die "no hbase-thrift/hbase-rest jar in $tmp"
	rm -rf "$LIB"
	mv "$tmp" "$LIB"
	touch "$LIB/.complete"
	log "jars ready in $((SECONDS - t0))s"
}

write_config() {
	mkdir -p "$CONF" "$LOGS" "$RUN" "$DATA/data"
	sed -e "s#@BASE@#$DATA#g" \
		-e "s#<name>hbase.regionserver.thrift.port</name><value>[0-9]*<#<name>hbase.regionserver.thrift.port</name><value>$THRIFT_PORT<#" \
		-e "s#<name>hbase.rest.port</name><value>[0-9]*<#<name>hbase.rest.port</name><value>$REST_PORT<#" \
		"$RECIPE/hbase-site.xml" >"$CONF/hbase-site.xml"
	cp "$RECIPE/log4j2.properties" "$CONF/log4j2.properties"
}

running() { pid_alive "$RUN/$1.pid" "${CLASS[$1]}"; }

master_ready() {
	grep -q "Master has completed initialization" "$LOGS/master.log" 2>/dev/null &&
		port_open "$HOST" "$ZK_PORT" && port_open "$HOST" 16020
}
thrift2_ready() { port_open "$HOST" "$THRIFT_PORT"; }
rest_ready() {
	[[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$HOST:$REST_PORT/status/cluster")" == 200 ]]
}

# start_one NAME HEAP ARGS...: launch (unless running) and wait until healthy.
start_one() {
	local name=$1 heap=$2 cls=${CLASS[$1]}
	shift 2
	if running "$name"; then
		if "${name}_ready"; then
			log "$name already running (pid $(<"$RUN/$name.pid"))"
			return 0
		fi
	else
		[[ -f $LOGS/$name.log ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.prev"
		# setsid+nohup: the JVM outlives this shell and its process group. No
		# subshell: one would hold the caller's stdout (a pipe) open.
		# shellcheck disable=SC2016 # $$ is the inner shell's pid, on purpose
		setsid nohup bash -c 'cd "$1" && echo $$ >"$2" && shift 2 && exec "$@"' _ "$DATA" "$RUN/$name.pid" \
			"$JAVA" -Dproc_"$name" -Xmx"$heap" "${JDK17_OPTS[@]}" "${COMMON_OPTS[@]}" \
			-Dhbase.log.dir="$LOGS" -cp "$CONF:$LIB/*" "$cls" "$@" \
			</dev/null >>"$LOGS/$name.log" 2>&1 &
		local i
		for ((i = 0; i < 50; i++)); do [[ -s $RUN/$name.pid ]] && break; sleep 0.1; done
		log "$name starting (pid $(<"$RUN/$name.pid"))"
	fi
	local t0=$SECONDS
	until "${name}_ready"; do
		if ! running "$name"; then
			tail -40 "$LOGS/$name.log" >&2 || true
			die "$name exited during start-up (log $LOGS/$name.log)"
		fi
		((SECONDS - t0 > START_TIMEOUT)) && die "$name not healthy after ${START_TIMEOUT}s (log $LOGS/$name.log)"
		sleep 0.5
	done
	log "$name healthy in $((SECONDS - t0))s"
}

cmd_up() {
	local keep=${1:-0}
	if running master && running thrift2 && running rest && master_ready && thrift2_ready && rest_ready; then
		log "already running: Thrift2 $HOST:$THRIFT_PORT, REST http://$HOST:$REST_PORT"
		return 0
	fi
	if ! running master; then
		if [[ -d $DATA/data && $keep != 1 ]]; then
			# Gateways of a dead master go first: their pid files are
			# among the leftovers, and once those are gone they would hold
			# the Thrift2 and REST ports as strangers.
			stop_one rest
			stop_one thrift2
			log "removing leftovers of a stopped HBase in $DATA"
			rm -rf "$DATA"
		fi
		local p
		for p in "$ZK_PORT" 16000 16020; do
			port_open "$HOST" "$p" && die "port $p on $HOST is taken by a process this script did not start"
		done
	fi
	for p in "$THRIFT_PORT" "$REST_PORT"; do
		local n=thrift2
		[[ $p == "$REST_PORT" ]] && n=rest
		if ! running "$n" && port_open "$HOST" "$p"; then
			die "port $p on $HOST is taken by a process this script did not start"
		fi
	done
	install_libs
	write_config
	start_one master "$MASTER_HEAP" start
	start_one thrift2 "$GATEWAY_HEAP" -p "$THRIFT_PORT" start
	start_one rest "$GATEWAY_HEAP" -p "$REST_PORT" start
	log "healthy: ZooKeeper $HOST:$ZK_PORT, Thrift2 $HOST:$THRIFT_PORT (binary protocol, plain socket), REST http://$HOST:$REST_PORT, data $DATA"
}

# stop_one NAME: by pid file only. The master first gets the orderly
# `HMaster stop --shutDownCluster` (~10 s; plain SIGTERM takes ~21 s because
# the in-JVM ZooKeeper goes first), then SIGTERM, then SIGKILL.
stop_one() {
	local name=$1 pid i
	running "$name" || { rm -f "$RUN/$name.pid"; return 0; }
	pid=$(<"$RUN/$name.pid")
	log "stopping $name (pid $pid)"
	if [[ $name == master ]]; then
		timeout 60 "$JAVA" -Xmx128m --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED \
			-Dlog4j2.configurationFile="$CONF/log4j2.properties" -cp "$CONF:$LIB/*" \
			"${CLASS[master]}" stop --shutDownCluster >>"$LOGS/stop.log" 2>&1 || log "master stop command failed; signalling"
		for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name still running after 60s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$RUN/$name.pid"
}

cmd_stop() {
	if [[ -d $RUN ]]; then
		stop_one rest
		stop_one thrift2
		stop_one master
	fi
	log "stopped"
}

cmd_down() {
	cmd_stop
	rm -rf "$DATA"
	log "removed $DATA"
}

cmd_status() {
	if running master && running thrift2 && running rest && master_ready && thrift2_ready && rest_ready; then
		log "running: HBase $VERSION, Thrift2 $HOST:$THRIFT_PORT, REST http://$HOST:$REST_PORT, data $DATA"
		return 0
	elif running master || running thrift2 || running rest; then
		log "partly up or not healthy (yet); logs in $LOGS"
		return 1
	fi
	log "not running"
	return 3
}

cmd_env() {
	echo "export HBASE_THRIFT_ADDR=$HOST:$THRIFT_PORT"
	echo "export HBASE_REST_URL=http://$HOST:$REST_PORT"
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
