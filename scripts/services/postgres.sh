#!/usr/bin/env bash
# PostgreSQL 15 for tests: Debian's cluster "15 main", listening on
# 127.0.0.1:5432 only, with role flowrun (password flowrun, CREATEDB) owning
# database flowrun.
#
#   scripts/services/postgres.sh up      install (apt), start, create role+db, wait until healthy
#   scripts/services/postgres.sh status  exit 0 when healthy
#   scripts/services/postgres.sh env     print `export POSTGRES_URL=...`
#   scripts/services/postgres.sh down    drop database+role flowrun, stop the cluster
#
# Must run as root (or with sudo): it installs packages and manages the cluster.
set -euo pipefail
# shellcheck disable=SC2034 # read by lib.sh's log
SERVICE=postgres
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGVER=15
CLUSTER=main
HOST=127.0.0.1
PORT=5432
ROLE=flowrun
PASSWORD=flowrun
DB=flowrun
URL="postgres://$ROLE:$PASSWORD@$HOST:$PORT/$DB?sslmode=disable"
CONF_DIR="/etc/postgresql/$PGVER/$CLUSTER/conf.d"
START_TIMEOUT="${FLOWRUN_POSTGRES_START_TIMEOUT:-60}"

# psql as the postgres superuser over the local socket (peer auth).
su_psql() {
	as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" "$@"
}

installed() {
	[[ -x /usr/lib/postgresql/$PGVER/bin/postgres ]] && command -v pg_ctlcluster >/dev/null 2>&1
}

app_ready() {
	PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" \
		-tAc 'select 1' >/dev/null 2>&1
}

cluster_online() {
	pg_lsclusters -h 2>/dev/null | awk -v v="$PGVER" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q online
}

cmd_up() {
	if installed && pg_isready -q -h "$HOST" -p "$PORT" && app_ready; then
		log "already running at $HOST:$PORT (database $DB ready)"
		return 0
	fi
	installed || apt_install postgresql
	if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$PGVER $CLUSTER"; then
		log "creating cluster $PGVER $CLUSTER"
		as_root pg_createcluster "$PGVER" "$CLUSTER" >&2
	fi
	# Listen on loopback IPv4 only; conf.d is included by Debian's postgresql.conf.
	local want="listen_addresses = '$HOST'
port = $PORT"
	if [[ "$(cat "$CONF_DIR/flowrun.conf" 2>/dev/null)" != "$want" ]]; then
		as_root mkdir -p "$CONF_DIR"
		printf '%s\n' "$want" | as_root tee "$CONF_DIR/flowrun.conf" >/dev/null
		if cluster_online; then
			log "restarting to apply listen_addresses"
			as_root pg_ctlcluster "$PGVER" "$CLUSTER" restart >&2
		fi
	fi
	if ! cluster_online; then
		log "starting cluster $PGVER $CLUSTER"
		as_root pg_ctlcluster "$PGVER" "$CLUSTER" start >&2
	fi
	local t0=$SECONDS
	until pg_isready -q -h "$HOST" -p "$PORT"; do
		((SECONDS - t0 > START_TIMEOUT)) && {
			tail -20 "/var/log/postgresql/postgresql-$PGVER-$CLUSTER.log" >&2 || true
			die "pg_isready failed for ${START_TIMEOUT}s"
		}
		sleep 0.5
	done
	# Role and database, idempotently. The role may create databases so
	# tests can make throwaway ones.
	su_psql -d postgres <<SQL >&2
SELECT 'CREATE ROLE $ROLE LOGIN CREATEDB' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE')
\gexec
ALTER ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$PASSWORD';
SELECT 'CREATE DATABASE $DB OWNER $ROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB')
\gexec
SQL
	app_ready || die "cannot log in as $ROLE at $HOST:$PORT/$DB"
	log "healthy at $HOST:$PORT (database $DB, role $ROLE) in $((SECONDS - t0))s"
}

cmd_down() {
	if installed && cluster_online; then
		log "dropping database $DB and role $ROLE"
		su_psql -d postgres <<SQL >&2 || true
DROP DATABASE IF EXISTS $DB WITH (FORCE);
DROP ROLE IF EXISTS $ROLE;
SQL
		log "stopping cluster $PGVER $CLUSTER"
		as_root pg_ctlcluster "$PGVER" "$CLUSTER" stop -m fast >&2
	fi
	log "stopped"
}

cmd_status() {
	if installed && pg_isready -q -h "$HOST" -p "$PORT" && app_ready; then
		log "running at $HOST:$PORT (database $DB ready)"
		return 0
	fi
	log "not running"
	return 3
}

cmd_env() {
	echo "export POSTGRES_URL='$URL'"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*)
	echo "usage: $0 {up|down|status|env}" >&2
	exit 2
	;;
esac
