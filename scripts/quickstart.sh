#!/usr/bin/env bash
# The full Pinterest flow on embedded defaults, nothing to install but Go:
#   emulator → ingest API (pipelines/pinterest_ingest.yaml) → in-process Kafka
#   → cleaning (pipelines/pinterest_clean.yaml) → out/quickstart/*.jsonl
#
#   bash scripts/quickstart.sh [POSTS]       (default 5000)
#
# Both pipelines use `brokers: embedded`; --embedded-kafka makes the ingest
# process serve its in-process broker on a fixed port that the cleaning
# process joins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
posts=${1:-5000}
out=out/quickstart
bin=$(mktemp -d)/flowrun
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

go build -o "$bin" ./cmd/flowrun
rm -rf "$out"
broker=127.0.0.1:19092

"$bin" run pipelines/pinterest_ingest.yaml --embedded-kafka $broker --set LISTEN=127.0.0.1:8080 2>"$(dirname "$bin")/ingest.log" &
ingest=$!
for _ in $(seq 100); do
	curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break
	sleep 0.1
done
"$bin" run pipelines/pinterest_clean.yaml --embedded-kafka $broker --set OUT="$out" &
clean=$!

"$bin" emulate --url http://127.0.0.1:8080/v1/posts --count "$posts" --rate 2000 --posters 16 --seed 1

# Wait until the cleaned output stops growing (the file sink flushes every
# second), then stop both pipelines: each drains, flushes and commits.
last=-1
for _ in $(seq 120); do
	sleep 1.5
	n=$(cat "$out"/pins.jsonl "$out"/dead_letters.jsonl 2>/dev/null | wc -l)
	[[ $n -gt 0 && $n -eq $last ]] && break
	last=$n
done
kill -INT $clean && wait $clean
kill -INT $ingest && wait $ingest
echo
echo "cleaned posts:  $(wc -l <"$out/pins.jsonl") in $out/pins.jsonl"
echo "dead letters:   $(wc -l <"$out/dead_letters.jsonl") in $out/dead_letters.jsonl"
