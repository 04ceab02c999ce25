# shellcheck shell=bash
# Shared helpers for scripts/services/*.sh. Sourced, not run.
#
# Conventions every service script follows:
#   - progress goes to stderr; `env` (and up.sh) print only `export K=V` lines
#     on stdout, so `eval "$(scripts/services/up.sh kafka)"` works;
#   - everything binds 127.0.0.1 only;
#   - data lives under $FLOWRUN_DATA/<service>, which `down` removes;
#   - downloads are cached under $FLOWRUN_CACHE (and ~/.m2, apt's cache).

FLOWRUN_DATA="${FLOWRUN_DATA:-/tmp/flowrun-services}"
FLOWRUN_CACHE="${FLOWRUN_CACHE:-${HOME:-/root}/.cache/flowrun}"
# shellcheck disable=SC2034 # used by the scripts that source this
SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[%s] %s\n' "${SERVICE:-services}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# pid_alive PIDFILE [PATTERN]: true when the pid in PIDFILE is running and, if
# PATTERN is given, its command line contains PATTERN (guards against reuse).
pid_alive() {
	local pidfile=$1 pattern=${2:-} pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -n $pattern ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
	fi
}

# as_root CMD...: run CMD as root (we normally are; use sudo otherwise).
as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install Debian packages; refreshes the package lists
# only when the first attempt fails (a fresh machine may have none or stale).
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	log "apt-get install -y $*"
	if ! as_root apt-get install -y -q --no-install-recommends "$@" >&2; then
		log "apt-get update (package lists missing or stale)"
		as_root apt-get update -q >&2
		as_root apt-get install -y -q --no-install-recommends "$@" >&2
	fi
}

# need_cmd CMD PKG: install PKG with apt when CMD is not on PATH.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}
