#!/usr/bin/env bash
# Side-by-side benchmark of flowrun and Benthos v4 on one input file; see
# bench/README.md. Run from anywhere:
#
#   bash bench/run.sh                 # 1,000,000 posts, each case once
#   N=100000 REPEAT=3 bash bench/run.sh
#   CASES=discard DATA=/tmp/bench N=20000 bash bench/run.sh
#
# Builds both binaries into bench/data/bin, generates bench/data/posts.jsonl
# when missing (or of another size), runs every case under /usr/bin/time -v,
# checks that both sides wrote the same cleaned records, and prints a markdown
# table. Exits non-zero when a run fails or the outputs differ.
set -euo pipefail

N=${N:-1000000}
SEED=${SEED:-42}
REPEAT=${REPEAT:-1}
CASES=${CASES:-"file discard"}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
data=${DATA:-$here/data} # DATA=/tmp/x keeps small trial runs away from the 1M file
bin="$data/bin"
in="$data/posts.jsonl"
mkdir -p "$bin"
cd "$root"

if [ ! -x /usr/bin/time ]; then
	echo "installing /usr/bin/time (Debian package time)" >&2
	apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

echo "building flowrun, benthos, gen, compare" >&2
go build -o "$bin/flowrun" ./cmd/flowrun
go build -o "$bin/gen" ./bench/gen
go build -o "$bin/compare" ./bench/compare
(cd "$here/benthos" && go build -o "$bin/benthos" .)

# Regenerate when the file is missing or holds another number of posts.
if [ ! -f "$in" ] || [ "$(cat "$in.n" 2>/dev/null)" != "$N $SEED" ]; then
	"$bin/gen" -n "$N" -seed "$SEED" -out "$in"
	echo "$N $SEED" >"$in.n"
fi
bytes=$(stat -c %s "$in")
cat "$in" >/dev/null # warm the page cache so both sides read from memory

# measure NAME CMD...: runs CMD under /usr/bin/time -v and appends a row
# "name wall_s cpu_s user_s sys_s maxrss_kib exit" to $results.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
measure() {
	local name=$1
	shift
	local tv="$data/time-$name.txt" log="$data/log-$name.txt" rc=0
	echo "running $name: $*" >&2
	/usr/bin/time -v -o "$tv" "$@" >"$log" 2>&1 || rc=$?
	awk -v name="$name" -v rc="$rc" -F': ' '
		/Elapsed \(wall clock\)/ { n = split($2, p, ":"); wall = 0; for (i = 1; i <= n; i++) wall = wall * 60 + p[i] }
		/User time \(seconds\)/ { user = $2 }
		/System time \(seconds\)/ { sys = $2 }
		/Maximum resident set size/ { rss = $2 }
		END { printf "%s %.2f %.2f %.2f %.2f %d %d\n", name, wall, user + sys, user, sys, rss, rc }
	' "$tv" >>"$results"
	if [ "$rc" != 0 ]; then
		echo "$name exited $rc; last lines of $log:" >&2
		tail -5 "$log" >&2
	fi
}

flowrun_file() {
	"$bin/flowrun" run bench/pinterest_clean.yaml --set "IN=$in" \
		--set "OUT=$data/flowrun.jsonl" --set "DEAD=$data/flowrun_dead.jsonl"
}
flowrun_discard() {
	"$bin/flowrun" run bench/pinterest_clean.yaml --set "IN=$in" \
		--set OUT=/dev/null --set DEAD=/dev/null
}
benthos_file() {
	IN="$in" OUT="$data/benthos.jsonl" DEAD="$data/benthos_dead.jsonl" BENTHOS_DIR="$here/benthos" \
		"$bin/benthos" -c "$here/benthos/config.yaml"
}
benthos_discard() {
	IN="$in" BENTHOS_DIR="$here/benthos" "$bin/benthos" -c "$here/benthos/config_discard.yaml"
}
export -f flowrun_file flowrun_discard benthos_file benthos_discard
export bin in data here

for r in $(seq "$REPEAT"); do
	for c in $CASES; do
		rm -f "$data"/{flowrun,benthos}{,_dead}.jsonl # Benthos's file output appends
		measure "flowrun-$c-$r" bash -c "flowrun_$c"
		measure "benthos-$c-$r" bash -c "benthos_$c"
	done
done

status=0
echo
echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), N=$N posts, $bytes bytes, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| case | wall s | records/s | CPU s (user+sys) | records/CPU s | max RSS MiB | exit |"
echo "|---|---:|---:|---:|---:|---:|---:|"
while read -r name wall cpu user sys rss rc; do
	awk -v name="$name" -v wall="$wall" -v cpu="$cpu" -v user="$user" -v sys="$sys" -v rss="$rss" -v rc="$rc" -v n="$N" 'BEGIN {
		printf "| %s | %.2f | %.0f | %.2f (%.2f+%.2f) | %.0f | %.1f | %d |\n", name, wall, (wall > 0 ? n / wall : 0), cpu, user, sys, (cpu > 0 ? n / cpu : 0), rss / 1024, rc }'
	[ "$rc" = 0 ] || status=1
done <"$results"

# Ratios from the best run of each case.
echo
for c in $CASES; do
	awk -v c="$c" '
		$7 == 0 && $1 ~ "^flowrun-" c "-" && (fw == 0 || $2 < fw) { fw = $2; fc = $3; fm = $6 }
		$7 == 0 && $1 ~ "^benthos-" c "-" && (bw == 0 || $2 < bw) { bw = $2; bc = $3; bm = $6 }
		END { if (fw > 0 && bw > 0) printf "- %s: flowrun is %.1fx Benthos in records/s (best runs), %.1fx in records per CPU second; peak memory %.0f MiB vs %.0f MiB\n", c, bw / fw, bc / fc, fm / 1024, bm / 1024 }
	' "$results"
done

echo
echo "## Equivalence (flowrun = A, Benthos = B)"
echo
if [ -f "$data/flowrun.jsonl" ] && [ -f "$data/benthos.jsonl" ]; then
	echo '```'
	"$bin/compare" "$data/flowrun.jsonl" "$data/benthos.jsonl" || status=1
	fd=$(wc -l <"$data/flowrun_dead.jsonl" 2>/dev/null || echo missing)
	bd=$(wc -l <"$data/benthos_dead.jsonl" 2>/dev/null || echo missing)
	echo "dead letters: flowrun $fd, benthos $bd"
	[ "$fd" = "$bd" ] || status=1
	echo '```'
else
	echo "skipped: an output file is missing"
	status=1
fi
exit $status
