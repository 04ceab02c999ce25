#!/usr/bin/env bash
# CPU cost of the ingest API per post: the server's user+sys time (from
# /proc/PID/stat) around 20,000 single posts (64 posters) and 200,000 posts
# in batches of 500 (8 posters), for each flowrun binary given, in
# interleaved rounds. On a shared, loaded machine throughput varies by 2-3x
# between rounds; CPU seconds per post barely do, so this is the way to
# compare two builds there.
#
#   bash bench/ingest/cpu.sh /tmp/flowrun-before /tmp/flowrun-after
#   ROUNDS=5 BROKERS=127.0.0.1:9092 bash bench/ingest/cpu.sh bin/a bin/b
#
# Needs Kafka at $BROKERS; each run writes to a fresh topic.
set -euo pipefail
cd "$(dirname "$0")/../.."
BROKERS="${BROKERS:-127.0.0.1:9092}"
ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-18381}"
(($# >= 1)) || { echo "usage: $0 FLOWRUN_BINARY..." >&2; exit 2; }
driver=$1
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{print ($14+$15)/t}' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
	bins=("$@")
	((round % 2 == 0)) && bins=($(printf '%s\n' "$@" | tac))
	for bin in "${bins[@]}"; do
		"$bin" run pipelines/pinterest_ingest.yaml --set KAFKA_BROKERS="$BROKERS" --set TOPIC="bench.cpu.$round.$$.$RANDOM" \
			--set LISTEN="127.0.0.1:$PORT" --log-level warn -q &
		pid=$!
		for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/readyz" && break; sleep 0.1; done
		"$driver" emulate --url "http://127.0.0.1:$PORT/v1/posts" --rate 0 --seed 7 --posters 8 --count 500 -q >/dev/null
		c0=$(cpu $pid)
		"$driver" emulate --url "http://127.0.0.1:$PORT/v1/posts" --rate 0 --seed 1 --posters 64 --count 20000 -q >/dev/null
		c1=$(cpu $pid)
		"$driver" emulate --url "http://127.0.0.1:$PORT/v1/posts" --rate 0 --seed 1 --batch 500 --posters 8 --count 200000 -q >/dev/null
		c2=$(cpu $pid)
		awk -v r="$round" -v b="$bin" -v a="$c0" -v s="$c1" -v t="$c2" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
			'BEGIN { printf "round %d  %s  single %.3f  batch %.4f  CPU s per 10,000 posts  (load %s)\n", r, b, (s-a)/2, (t-s)/20, l }'
		kill -TERM $pid
		wait $pid || true
	done
done
