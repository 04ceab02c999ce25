#!/usr/bin/env bash
# Cost of the kafka sink's transactional mode on the ingest API:
# pipelines/pinterest_ingest.yaml run twice side by side against the real
# Kafka at $BROKERS, once as shipped (KAFKA_TRANSACTIONAL=true: each batch
# one Kafka transaction) and once with --set KAFKA_TRANSACTIONAL=false,
# driven by the same `flowrun emulate` runs (seed 1) in alternating order
# per round: single posts (SINGLE posts, SINGLE_POSTERS posters), then
# batches (BATCH_POSTS posts, BATCH per request, BATCH_POSTERS posters).
# Prints the medians and the median of the per-round ratios txn/plain, and
# the records each topic holds for a read_committed reader afterwards.
#
#   bash bench/ingest/txn.sh                        # REPEAT=5
#   REPEAT=3 SINGLE=5000 BATCH_POSTS=50000 bash bench/ingest/txn.sh
#   TXN_SETS="--set KAFKA_TXN_PRODUCERS=1" bash bench/ingest/txn.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT="${REPEAT:-5}"
BROKERS="${BROKERS:-127.0.0.1:9092}"
SINGLE="${SINGLE:-10000}"
SINGLE_POSTERS="${SINGLE_POSTERS:-64}"
BATCH="${BATCH:-500}"
BATCH_POSTS="${BATCH_POSTS:-100000}"
BATCH_POSTERS="${BATCH_POSTERS:-8}"
TXN_PORT="${TXN_PORT:-18090}"
PLAIN_PORT="${PLAIN_PORT:-18091}"
TXN_SETS="${TXN_SETS:-}" # extra flags for the transactional server, e.g. "--set KAFKA_TXN_PRODUCERS=1"
BIN=bench/ingest/bin
OUT=bench/ingest/out
mkdir -p "$BIN" "$OUT"
RES="$OUT/txn.jsonl"
: >"$RES"
go build -o "$BIN/flowrun" ./cmd/flowrun
go build -o "$BIN/bareproducer" ./bench/kafka/bareproducer
command -v kcat >/dev/null || { echo "kcat missing (apt-get install -y kcat)" >&2; exit 1; }
echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  commit: $(git rev-parse --short HEAD)" >&2

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_ready() {
	for _ in $(seq 1 150); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz" || true) == 200 ]] && return 0
		sleep 0.1
	done
	echo "server on port $1 not ready" >&2
	exit 1
}
emulate() { # emulate MODE CASE ARGS...
	local mode=$1 case=$2
	shift 2
	"$BIN/flowrun" emulate --rate 0 --seed 1 --json -q "$@" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"mode":sys.argv[1],"case":sys.argv[2],"round":int(sys.argv[3]),"posts_per_s":d["accepted_rate"],"accepted":d["accepted"],"failed":d["failed"],"p50_ms":d["latency"]["p50_ms"],"p99_ms":d["latency"]["p99_ms"]}))' "$mode" "$case" "$ROUND" |
		tee -a "$RES" >&2
}

for t in bench.ingest.txn bench.ingest.plain; do "$BIN/bareproducer" -brokers "$BROKERS" -topic "$t" -n 0 -create; done
"$BIN/flowrun" run pipelines/pinterest_ingest.yaml --set KAFKA_BROKERS="$BROKERS" --set TOPIC=bench.ingest.txn \
	--set LISTEN=127.0.0.1:$TXN_PORT $TXN_SETS --log-level warn 2>"$OUT/txn-server.log" &
PIDS+=($!)
"$BIN/flowrun" run pipelines/pinterest_ingest.yaml --set KAFKA_BROKERS="$BROKERS" --set TOPIC=bench.ingest.plain \
	--set LISTEN=127.0.0.1:$PLAIN_PORT --set KAFKA_TRANSACTIONAL=false --log-level warn 2>"$OUT/plain-server.log" &
PIDS+=($!)
wait_ready $TXN_PORT
wait_ready $PLAIN_PORT
for p in $TXN_PORT $PLAIN_PORT; do
	"$BIN/flowrun" emulate --url "http://127.0.0.1:$p/v1/posts" --rate 0 --seed 7 --posters 8 --count 500 -q >/dev/null
done
for ROUND in $(seq 1 "$REPEAT"); do
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	echo "{\"round\": $ROUND, \"load\": \"$load\"}" | tee -a "$RES" >&2
	order="txn:$TXN_PORT plain:$PLAIN_PORT"
	((ROUND % 2 == 0)) && order="plain:$PLAIN_PORT txn:$TXN_PORT"
	for c in single batch; do
		for s in $order; do
			mode=${s%%:*} port=${s##*:}
			if [[ $c == single ]]; then
				emulate "$mode" single --url "http://127.0.0.1:$port/v1/posts" --posters "$SINGLE_POSTERS" --count "$SINGLE"
			else
				emulate "$mode" batch --url "http://127.0.0.1:$port/v1/posts" --batch "$BATCH" --posters "$BATCH_POSTERS" --count "$BATCH_POSTS"
			fi
		done
	done
done
kill -TERM "${PIDS[@]}"
wait "${PIDS[@]}" || true
PIDS=()
for t in txn plain; do
	# kcat, read_committed: bareconsumer reads up to the high-water mark,
	# which transaction markers keep out of reach.
	n=$(kcat -b "$BROKERS" -C -t "bench.ingest.$t" -o beginning -e -q -X isolation.level=read_committed -f '%o\n' | wc -l)
	echo "{\"mode\": \"$t\", \"case\": \"in_kafka\", \"records\": $n}" | tee -a "$RES" >&2
done

python3 - "$RES" "$SINGLE" "$SINGLE_POSTERS" "$BATCH_POSTS" "$BATCH" "$BATCH_POSTERS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
single, sp, bposts, bsize, bp = sys.argv[2:7]
loads = [r["load"] for r in rows if "load" in r]
print(f"{len(loads)} rounds; load (1/5/15 min) at each round: {'; '.join(loads)}\n")
print("| case | mode | posts/s (median) | p50 ms | p99 ms | failed | txn/plain posts/s (median of per-round ratios) |")
print("|---|---|---:|---:|---:|---:|---|")
desc = {"single": f"single posts ({single} posts, {sp} posters)", "batch": f"batch ({bposts} posts, {bsize}/request, {bp} posters)"}
for case in ("single", "batch"):
    by = {m: {r["round"]: r for r in rows if r.get("case") == case and r.get("mode") == m} for m in ("txn", "plain")}
    ratios = [by["txn"][k]["posts_per_s"] / by["plain"][k]["posts_per_s"] for k in by["txn"] if k in by["plain"]]
    for m in ("txn", "plain"):
        xs = list(by[m].values())
        med = lambda f: statistics.median(x[f] for x in xs)
        r = f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)})" if m == "txn" else ""
        print(f"| {desc[case]} | {m} | {med('posts_per_s'):,.0f} | {med('p50_ms'):.1f} | {med('p99_ms'):.1f} | {sum(x['failed'] for x in xs)} | {r} |")
for r in rows:
    if r.get("case") == "in_kafka":
        print(f"- {r['mode']}: records in its topic afterwards (kcat, read_committed): {r['records']}")
PY
