#!/usr/bin/env bash
# Side-by-side benchmark of flowrun and Benthos v4 on one input file; see
# bench/README.md. Run from anywhere:
#
#   bash bench/run.sh                 # 1,000,000 posts, each case once
#   N=100000 REPEAT=3 bash bench/run.sh
#   CASES=file DATA=/tmp/bench N=20000 bash bench/run.sh
#   CASES="discard metrics" REPEAT=5 bash bench/run.sh   # the cost of --metrics-addr
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
results="$data/results.txt" # one line per run: name wall cpu user sys maxrss_kib exit
: >"$results"
measure() {
	local name=$1
	shift
	local tv="$data/time-$name.txt" log="$data/log-$name.txt" rc=0
	echo "running $name (load average $(cut -d' ' -f1 /proc/loadavg)): $*" >&2
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
flowrun_discard() { # both sinks `discard`: no encoding, as Benthos's `drop`
	"$bin/flowrun" run bench/pinterest_clean_discard.yaml --set "IN=$in"
}
# metrics: the discard case with Prometheus metrics and the status page on,
# to measure what they cost beside the same run without them.
flowrun_metrics() {
	"$bin/flowrun" run bench/pinterest_clean_discard.yaml --set "IN=$in" --metrics-addr 127.0.0.1:0
}
benthos_metrics() { benthos_discard; }
benthos_file() {
	IN="$in" OUT="$data/benthos.jsonl" DEAD="$data/benthos_dead.jsonl" BENTHOS_DIR="$here/benthos" \
		"$bin/benthos" -c "$here/benthos/config.yaml"
}
benthos_discard() {
	IN="$in" BENTHOS_DIR="$here/benthos" "$bin/benthos" -c "$here/benthos/config_discard.yaml"
}
export -f flowrun_file flowrun_discard flowrun_metrics benthos_file benthos_discard benthos_metrics
export bin in data here

for r in $(seq "$REPEAT"); do
	for c in $CASES; do
		# Benthos's file output appends; the discard case leaves the files alone.
		[ "$c" != file ] || rm -f "$data"/{flowrun,benthos}{,_dead}.jsonl
		measure "flowrun-$c-$r" bash -c "flowrun_$c"
		measure "benthos-$c-$r" bash -c "benthos_$c"
	done
done

status=0
echo
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- 2>/dev/null || rev="$rev + uncommitted changes"
echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), flowrun at $rev, N=$N posts, $bytes bytes, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| case | wall s | records/s | CPU s (user+sys) | CPU % | records/CPU s | max RSS MiB | exit |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
while read -r name wall cpu user sys rss rc; do
	awk -v name="$name" -v wall="$wall" -v cpu="$cpu" -v user="$user" -v sys="$sys" -v rss="$rss" -v rc="$rc" -v n="$N" 'BEGIN {
		printf "| %s | %.2f | %.0f | %.2f (%.2f+%.2f) | %.0f | %.0f | %.1f | %d |\n", name, wall, (wall > 0 ? n / wall : 0), cpu, user, sys, (wall > 0 ? 100 * cpu / wall : 0), (cpu > 0 ? n / cpu : 0), rss / 1024, rc }'
	[ "$rc" = 0 ] || status=1
done <"$results"

# Medians over the rounds (wall time and CPU time separately) and the
# highest peak memory; the machine is shared, so single runs vary a lot.
ratios=""
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "Medians over $REPEAT round(s); peak memory is the highest of the rounds."
echo
echo "| case | side | records/s (median) | CPU s (median) | records/CPU s | peak RSS MiB (max) |"
echo "|---|---|---:|---:|---:|---:|"
for c in $CASES; do
	for side in flowrun benthos; do
		rows=$(awk -v p="^$side-$c-" '$1 ~ p && $7 == 0' "$results")
		[ -n "$rows" ] || continue
		wall=$(echo "$rows" | awk '{ print $2 }' | median)
		cpu=$(echo "$rows" | awk '{ print $3 }' | median)
		rss=$(echo "$rows" | awk 'BEGIN { m = 0 } $6 > m { m = $6 } END { print m }')
		awk -v c="$c" -v s="$side" -v w="$wall" -v cpu="$cpu" -v rss="$rss" -v n="$N" 'BEGIN {
			printf "| %s | %s | %.0f | %.2f | %.0f | %.1f |\n", c, s, n / w, cpu, n / cpu, rss / 1024 }'
		eval "${side}_wall=$wall ${side}_cpu=$cpu"
	done
	ratios+=$(awk -v c="$c" -v fw="${flowrun_wall:-0}" -v bw="${benthos_wall:-0}" -v fc="${flowrun_cpu:-0}" -v bc="${benthos_cpu:-0}" 'BEGIN {
		if (fw > 0 && bw > 0 && fc > 0) printf "- %s: flowrun is %.1fx Benthos in records/s and %.1fx in records per CPU second (medians)\n", c, bw / fw, bc / fc }')$'\n'
	unset flowrun_wall benthos_wall flowrun_cpu benthos_cpu
done
echo
printf '%s' "$ratios"

echo
echo "## Equivalence (flowrun = A, Benthos = B)"
echo
if [[ " $CASES " != *" file "* ]]; then
	echo "skipped: the file case did not run (CASES=$CASES)"
elif [ -f "$data/flowrun.jsonl" ] && [ -f "$data/benthos.jsonl" ]; then
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
