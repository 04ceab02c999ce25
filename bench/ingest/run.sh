#!/usr/bin/env bash
# Ingest API benchmark: flowrun's pipelines/pinterest_ingest.yaml (answers
# after Kafka stored the posts, acks=all) against the original system's
# FastAPI + kafka-python app (app.py: fire-and-forget sends, uvicorn, one
# worker), both into the real Kafka at $BROKERS, driven by the same
# `flowrun emulate` process on loopback with the same posts (seed 1) and
# concurrency; plus bareproducer (bench/kafka/bareproducer) producing the
# same number of generated posts as the batch case, as the transport limit:
# once generating and encoding them inside its clock (as the emulator does
# for the servers, "bareproducer") and once with them ready before the clock
# starts ("bareproducer-pregen").
#
#   bash bench/ingest/run.sh                 # REPEAT=3
#   REPEAT=1 SINGLE=5000 BATCH_POSTS=50000 bash bench/ingest/run.sh
#
# Per round: fresh topics (4 partitions), both servers started, a 500-post
# warm-up each, then single posts (SINGLE posts, SINGLE_POSTERS posters),
# batches (BATCH_POSTS posts in requests of BATCH, BATCH_POSTERS posters),
# a wrk run (WRK_SECONDS, WRK_CONNS connections, one fixed post, post.lua)
# on the single-post endpoint; the servers are stopped (SIGTERM: flowrun
# drains, the app flushes its producer) and the topics are counted, so the
# table shows what actually reached Kafka (kcat, read_committed). flowrun's
# server is the pipeline as shipped: its kafka sink writes in transactions
# (bench/ingest/txn.sh measures their cost). Needs Kafka at $BROKERS
# (scripts/services/kafka.sh up), python3, kcat and wrk (apt-get install -y wrk kcat).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT="${REPEAT:-3}"
BROKERS="${BROKERS:-127.0.0.1:9092}"
SINGLE="${SINGLE:-20000}"
SINGLE_POSTERS="${SINGLE_POSTERS:-64}"
BATCH="${BATCH:-500}"
BATCH_POSTS="${BATCH_POSTS:-200000}"
BATCH_POSTERS="${BATCH_POSTERS:-8}"
WRK_SECONDS="${WRK_SECONDS:-10}"
WRK_CONNS="${WRK_CONNS:-64}"
FLOW_PORT=18080
PY_PORT=18081
BIN=bench/ingest/bin
OUT=bench/ingest/out
PROFILE="${PROFILE:-}" # 1: CPU profile of the last round's flowrun server to $OUT/ingest.prof
mkdir -p "$BIN" "$OUT"
: >"$OUT/results.jsonl"

go build -o "$BIN/flowrun" ./cmd/flowrun
go build -o "$BIN/bareproducer" ./bench/kafka/bareproducer
command -v kcat >/dev/null || { echo "kcat missing: apt-get install -y kcat" >&2; exit 1; }
if [[ ! -x bench/ingest/.venv/bin/uvicorn ]]; then
	python3 -m venv bench/ingest/.venv
	bench/ingest/.venv/bin/pip install -q -r bench/ingest/requirements.txt
fi
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2

FLOW_PID=""
PY_PID=""
cleanup() {
	[[ -n $FLOW_PID ]] && kill "$FLOW_PID" 2>/dev/null || true
	[[ -n $PY_PID ]] && kill "$PY_PID" 2>/dev/null || true
}
trap cleanup EXIT

wait_port() { # wait until an HTTP server answers on port $1
	for _ in $(seq 1 100); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" || true) != 000 ]] && return 0
		sleep 0.1
	done
	echo "server on port $1 did not start" >&2
	exit 1
}

# emulate SERVER CASE ARGS...: one emulator run, recorded as a result line.
emulate() {
	local server=$1 case=$2
	shift 2
	"$BIN/flowrun" emulate --rate 0 --seed 1 --json -q "$@" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"server":sys.argv[1],"case":sys.argv[2],"posts_per_s":d["accepted_rate"],"accepted":d["accepted"],"failed":d["failed"],"rejected":d["rejected"],"p50_ms":d["latency"]["p50_ms"],"p99_ms":d["latency"]["p99_ms"]}))' "$server" "$case" |
		tee -a "$OUT/results.jsonl" >&2
}

# wrk_run SERVER PORT: wrk on the single-post endpoint.
wrk_run() {
	wrk -t2 -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --latency -s bench/ingest/post.lua "http://127.0.0.1:$2/v1/posts" >"$OUT/wrk-$1.txt"
	python3 - "$1" "$OUT/wrk-$1.txt" <<'PY' | tee -a "$OUT/results.jsonl" >&2
import json, re, sys
t = open(sys.argv[2]).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errs = re.search(r"Socket errors: (.*)", t)
reqs = int(re.search(r"(\d+) requests in", t).group(1))
print(json.dumps({"server": sys.argv[1], "case": "wrk", "posts_per_s": rps, "requests": reqs,
                  "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errs.group(1) if errs else "",
                  "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1)), "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))}))
PY
}

# Records a read_committed reader gets (kcat): bareconsumer reads up to the
# high-water mark, which the commit markers of flowrun's transactional sink
# keep out of its reach.
topic_count() { kcat -b "$BROKERS" -C -t "$1" -o beginning -e -q -X isolation.level=read_committed -f '%o\n' | wc -l; }

for p in $FLOW_PORT $PY_PORT; do
	if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/" || true) != 000 ]]; then
		echo "port $p is already in use: stop that server first" >&2
		exit 1
	fi
done

for r in $(seq 1 "$REPEAT"); do
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	echo "round $r/$REPEAT, load: $load" >&2
	echo "{\"round\": $r, \"load\": \"$load\"}" >>"$OUT/results.jsonl"
	for t in bench.ingest.flow bench.ingest.py bench.ingest.bare bench.ingest.pregen; do
		"$BIN/bareproducer" -brokers "$BROKERS" -topic "$t" -n 0 -create
	done
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.ingest.bare -n "$BATCH_POSTS" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"server":"bareproducer","case":"batch","posts_per_s":d["records_per_s"],"accepted":d["records"]}))' |
		tee -a "$OUT/results.jsonl" >&2
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.ingest.pregen -n "$BATCH_POSTS" -pregen |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"server":"bareproducer-pregen","case":"batch","posts_per_s":d["records_per_s"],"accepted":d["records"]}))' |
		tee -a "$OUT/results.jsonl" >&2

	prof=()
	[[ -n $PROFILE && $r == "$REPEAT" ]] && prof=(--cpuprofile "$OUT/ingest.prof")
	"$BIN/flowrun" run pipelines/pinterest_ingest.yaml --set KAFKA_BROKERS="$BROKERS" --set TOPIC=bench.ingest.flow \
		--set LISTEN=127.0.0.1:$FLOW_PORT --log-level warn "${prof[@]}" 2>"$OUT/flowrun-server.log" &
	FLOW_PID=$!
	(cd bench/ingest && exec env KAFKA_BROKERS="$BROKERS" TOPIC=bench.ingest.py .venv/bin/uvicorn app:app \
		--host 127.0.0.1 --port $PY_PORT --workers 1 --log-level warning 2>../../"$OUT/fastapi-server.log") &
	PY_PID=$!
	wait_port $FLOW_PORT
	wait_port $PY_PORT

	for s in flowrun:$FLOW_PORT fastapi:$PY_PORT; do
		name=${s%%:*} port=${s##*:}
		"$BIN/flowrun" emulate --url "http://127.0.0.1:$port/v1/posts" --rate 0 --seed 7 --posters 8 --count 500 -q >/dev/null
		emulate "$name" single --url "http://127.0.0.1:$port/v1/posts" --posters "$SINGLE_POSTERS" --count "$SINGLE"
		emulate "$name" batch --url "http://127.0.0.1:$port/v1/posts" --batch "$BATCH" --posters "$BATCH_POSTERS" --count "$BATCH_POSTS"
		wrk_run "$name" "$port"
	done

	kill -TERM "$FLOW_PID" "$PY_PID"
	wait "$FLOW_PID" || true
	wait "$PY_PID" || true
	FLOW_PID="" PY_PID=""
	echo "{\"server\": \"flowrun\", \"case\": \"in_kafka\", \"records\": $(topic_count bench.ingest.flow)}" | tee -a "$OUT/results.jsonl" >&2
	echo "{\"server\": \"fastapi\", \"case\": \"in_kafka\", \"records\": $(topic_count bench.ingest.py)}" | tee -a "$OUT/results.jsonl" >&2
done

python3 - "$OUT/results.jsonl" "$SINGLE" "$SINGLE_POSTERS" "$BATCH_POSTS" "$BATCH" "$BATCH_POSTERS" "$WRK_CONNS" "$WRK_SECONDS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
single, sp, bposts, bsize, bp, wc, ws = sys.argv[2:9]
loads = [r["load"] for r in rows if "load" in r]
by = {}
for r in rows:
    if "server" in r:
        by.setdefault((r["server"], r["case"]), []).append(r)
def med(k, f):
    return statistics.median(x[f] for x in by[k])
print(f"{len(loads)} rounds, medians; load (1/5/15 min) at each round: {'; '.join(loads)}\n")
print("| case | server | posts/s | p50 ms | p99 ms | failed/non-2xx | ratio |")
print("|---|---|---:|---:|---:|---:|---|")
desc = {"single": f"single posts ({single} posts, {sp} posters)",
        "batch": f"batch ({bposts} posts, {bsize}/request, {bp} posters)",
        "wrk": f"single posts, wrk ({wc} conns, {ws}s, fixed post)"}
for case in ("single", "batch", "wrk"):
    for server in ("flowrun", "fastapi"):
        k = (server, case)
        bad = sum(x.get("failed", 0) + x.get("rejected", 0) + x.get("non2xx", 0) for x in by[k])
        ratio = ""
        if server == "flowrun":
            ratio = f"{med(k, 'posts_per_s') / med(('fastapi', case), 'posts_per_s'):.1f}× FastAPI"
            if case == "batch":
                ratio += f"; {med(k, 'posts_per_s') / med(('bareproducer', 'batch'), 'posts_per_s') * 100:.0f}% of bareproducer"
                ratio += f", {med(k, 'posts_per_s') / med(('bareproducer-pregen', 'batch'), 'posts_per_s') * 100:.0f}% of bareproducer-pregen"
        print(f"| {desc[case]} | {server} | {med(k, 'posts_per_s'):,.0f} | {med(k, 'p50_ms'):.1f} | {med(k, 'p99_ms'):.1f} | {bad} | {ratio} |")
    if case == "batch":
        print(f"| batch transport limit ({bposts} posts, generated inside the clock) | bareproducer | {med(('bareproducer', 'batch'), 'posts_per_s'):,.0f} | | | | |")
        print(f"| batch transport limit ({bposts} posts, generated before the clock) | bareproducer-pregen | {med(('bareproducer-pregen', 'batch'), 'posts_per_s'):,.0f} | | | | |")
print()
for server in ("flowrun", "fastapi"):
    got = [x["records"] for x in by[(server, "in_kafka")]]
    sent = [500 + int(single) + int(bposts) + x["requests"] for x in by[(server, "wrk")]]
    print(f"- {server}: records in its topic after each round: {got}; answered 2xx (500 warm-up + {single} single + {bposts} batch + completed wrk requests): {sent}")
PY
