#!/usr/bin/env bash
# The lake benchmark (docs/lake.md has the results):
#   write: N generated posts → the lake sink, beside the same posts → one
#          Parquet file with arrow-go's pqarrow (the file sink);
#   kafka: K posts from a real Kafka topic → pipelines/pinterest_lake.yaml
#          --once, beside the same topic → one Parquet file (skipped
#          without FLOWRUN_KAFKA_BROKERS);
#   read:  the lake → lake source → the shared cleaning → discard, beside
#          reading the same files with pqarrow alone (bench/lake/pqread).
# Each under /usr/bin/time -v for the peak memory.
#
#   N=1000000 K=200000 bash bench/lake/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
N="${N:-1000000}"
K="${K:-200000}"
DATA="${DATA:-bench/data}"
BIN="$DATA/bin"
mkdir -p "$BIN"
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null 2>&1 || true; }
go build -o "$BIN/flowrun" ./cmd/flowrun
go build -o "$BIN/pqread" ./bench/lake/pqread

# timed NAME CMD...: runs CMD under time -v, prints "NAME seconds peakMiB".
timed() {
	local name=$1
	shift
	/usr/bin/time -v "$@" >"$DATA/$name.out" 2>"$DATA/$name.time"
	local wall rss
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$DATA/$name.time")
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$DATA/$name.time")
	printf '%-14s wall %-9s peak RSS %5d MiB\n' "$name" "$wall" $((rss / 1024))
}
secs() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$DATA/$1.time"; }
rate() { awk -v n="$1" -v s="$(secs "$2")" 'BEGIN {printf "%.0f rows/s", n/s}'; }

echo "== write: $N generated posts"
rm -rf "$DATA/lake" "$DATA/plain.parquet"
timed lake-write "$BIN/flowrun" run bench/lake/gen_lake.yaml --set POSTS="$N" --set LAKE="$DATA/lake" --log-level warn
timed pq-write "$BIN/flowrun" run bench/lake/gen_parquet.yaml --set POSTS="$N" --set OUT="$DATA/plain.parquet" --log-level warn
lake_mb=$(du -sm "$DATA/lake" | cut -f1)
pq_mb=$(du -sm "$DATA/plain.parquet" | cut -f1)
echo "lake: $(rate "$N" lake-write), $lake_mb MB; pqarrow file: $(rate "$N" pq-write), $pq_mb MB"

if [[ -n ${FLOWRUN_KAFKA_BROKERS:-} ]]; then
	echo "== kafka: $K posts from a topic"
	topic="bench-lake-$(date +%s)"
	"$BIN/flowrun" run bench/lake/gen_topic.yaml --set POSTS="$K" --set KAFKA_BROKERS="$FLOWRUN_KAFKA_BROKERS" --set TOPIC="$topic" --log-level warn >/dev/null
	rm -rf "$DATA/klake" "$DATA/kplain.parquet"
	timed kafka-lake "$BIN/flowrun" run pipelines/pinterest_lake.yaml --once --set KAFKA_BROKERS="$FLOWRUN_KAFKA_BROKERS" \
		--set TOPIC="$topic" --set GROUP="$topic-lake" --set LAKE="$DATA/klake" --set DEAD_LETTERS="$DATA/kdead" --log-level warn
	timed kafka-pq "$BIN/flowrun" run bench/lake/kafka_parquet.yaml --once --set KAFKA_BROKERS="$FLOWRUN_KAFKA_BROKERS" \
		--set TOPIC="$topic" --set GROUP="$topic-pq" --set OUT="$DATA/kplain.parquet" --log-level warn
	echo "kafka → lake: $(rate "$K" kafka-lake), $(du -sm "$DATA/klake" | cut -f1) MB; kafka → pqarrow file: $(rate "$K" kafka-pq)"
fi

echo "== read: the $N-post lake"
timed lake-clean "$BIN/flowrun" run bench/lake/lake_clean.yaml --set LAKE="$DATA/lake" --log-level warn
timed pqread "$BIN/pqread" "$DATA/lake"
echo "lake → clean: $(rate "$N" lake-clean); pqarrow read alone: $(rate "$N" pqread)"
cat "$DATA/pqread.out"
