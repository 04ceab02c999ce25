#!/usr/bin/env bash
# PostgreSQL sink benchmark (bench/POSTGRES.md), three parts on one machine:
#
#  1. the sink against the raw pgx limit, same cleaned rows already in
#     memory (Go benchmarks in operators/sink/postgres/bench_test.go, rounds
#     interleaved): raw COPY vs mode append; raw COPY into a temp table +
#     INSERT … ON CONFLICT vs mode upsert with exactly-once offsets;
#  2. end to end, Kafka → clean → PostgreSQL: N posts produced to a
#     4-partition topic first, then `flowrun run pipelines/
#     pinterest_streaming.yaml --once` timed (rows/s from its summary, peak
#     RSS from /usr/bin/time);
#  3. freshness at RATE posts/s: the ingest API and the streaming pipeline
#     on real Kafka, `flowrun emulate --rate RATE` for SECONDS; per pin,
#     visible_at (clock_timestamp() when the row is inserted, a column the
#     benchmark adds) − ingested_at (stamped by the ingest API when the post
#     arrives): p50 and p99.
#
#   bash bench/postgres/run.sh
#   N=100000 ROUNDS=2 RATE=2000 SECONDS_RUN=10 bash bench/postgres/run.sh
#   PARTS=3 BATCH=10 bash bench/postgres/run.sh    # freshness only, 10 posts per request
#
# Needs Kafka at $BROKERS and PostgreSQL at $POSTGRES_URL
# (scripts/services/up.sh kafka postgres), kcat and psql.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-200000}"
ROUNDS="${ROUNDS:-3}"
RATE="${RATE:-5000}"
PARTS="${PARTS:-123}"
BATCH="${BATCH:-0}" # posts per ingest request (0: one post per request)
SECS="${SECONDS_RUN:-${SECONDS:-20}}"
BROKERS="${BROKERS:-127.0.0.1:9092}"
export POSTGRES_URL="${POSTGRES_URL:-postgres://flowrun:flowrun@127.0.0.1:5432/flowrun?sslmode=disable}"
OUT=bench/postgres/out
mkdir -p "$OUT"
go build -o "$OUT/flowrun" ./cmd/flowrun
go build -o "$OUT/gen" ./bench/gen
go build -o "$OUT/bareproducer" ./bench/kafka/bareproducer
sql() { psql "$POSTGRES_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)  N=$N ROUNDS=$ROUNDS RATE=$RATE" | tee "$OUT/summary.txt"

# 1. Sink vs raw pgx, interleaved rounds.
if [[ $PARTS == *1* ]]; then
go test -c -o "$OUT/pg.test" ./operators/sink/postgres
for r in $(seq "$ROUNDS"); do
	"$OUT/pg.test" -test.run '^$' -test.bench 'RawCopy$|SinkAppend|RawCopyMerge|SinkUpsert' -test.benchtime 3x | grep '^Benchmark' | sed "s/^/round $r: /"
done | tee "$OUT/sink.txt"
python3 - "$OUT/sink.txt" <<'PY' | tee -a "$OUT/summary.txt"
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+): (\S+)-\d+\s.*?([\d.]+) rows/s", line)
    if m:
        runs.setdefault(m.group(2), {})[int(m.group(1))] = float(m.group(3))
med = {k: statistics.median(v.values()) for k, v in runs.items()}
for k, v in med.items():
    print(f"| {k} | {v:,.0f} rows/s |")
def ratio(a, b):
    rs = [runs[a][r] / runs[b][r] for r in runs[a] if r in runs[b]]
    return statistics.median(rs) if rs else float("nan")
print(f"append / raw COPY: {ratio('BenchmarkSinkAppend', 'BenchmarkRawCopy'):.0%} (median of per-round ratios)")
print(f"upsert+offsets pool=1 / raw COPY+merge 1 conn: {ratio('BenchmarkSinkUpsert/pool=1', 'BenchmarkRawCopyMerge/conns=1'):.0%}")
print(f"upsert+offsets pool=2 / raw COPY+merge 2 conns: {ratio('BenchmarkSinkUpsert/pool=2', 'BenchmarkRawCopyMerge/conns=2'):.0%}")
PY
fi

# 2. End to end: Kafka → clean → PostgreSQL, --once over N posts.
if [[ $PARTS == *2* ]]; then
topic="bench.pg.$(date +%s)"
schema="bench_pg_e2e"
"$OUT/gen" -n "$N" -seed 42 -out "$OUT/posts.jsonl" >/dev/null
"$OUT/bareproducer" -brokers "$BROKERS" -topic "$topic" -n 0 -create -partitions 4 >/dev/null
# Keyed by unique_id (versions of a post in one partition, in order) and
# stamped with ingested_at as the ingest API would (the window needs it).
kcat -P -b "$BROKERS" -t "$topic" -K '\t' < <(python3 - "$OUT/posts.jsonl" <<'PY'
import datetime, json, sys
t0 = datetime.datetime.now(datetime.timezone.utc)
for i, line in enumerate(open(sys.argv[1])):
    p = json.loads(line)
    p["ingested_at"] = (t0 + datetime.timedelta(milliseconds=i)).isoformat()
    print((p.get("unique_id") or "none") + "\t" + json.dumps(p))
PY
)
sql -c "drop schema if exists $schema cascade" -c "create schema $schema"
PGOPTIONS="-c search_path=$schema" sql -f deploy/postgres/pinterest.sql
/usr/bin/time -o "$OUT/e2e.time" -f "%e s, max RSS %M KB" "$OUT/flowrun" run pipelines/pinterest_streaming.yaml --once \
	--set "KAFKA_BROKERS=$BROKERS" --set "TOPIC=$topic" --set "GROUP=$topic" --set "PG_SCHEMA=$schema" --log-level warn 2>"$OUT/e2e.log"
grep -E "records read" "$OUT/e2e.log" | sed 's/^/end to end: /' | tee -a "$OUT/summary.txt"
echo "end to end: $(cat "$OUT/e2e.time"); pins $(sql -tAc "select count(*) from $schema.pins"), dead letters $(sql -tAc "select count(*) from $schema.dead_letters")" | tee -a "$OUT/summary.txt"

fi

# 3. Freshness at RATE posts/s through the ingest API.
[[ $PARTS == *3* ]] || exit 0
topic="bench.pg.fresh.$(date +%s)"
schema="bench_pg_fresh"
"$OUT/bareproducer" -brokers "$BROKERS" -topic "$topic" -n 0 -create -partitions 4 >/dev/null
sql -c "drop schema if exists $schema cascade" -c "create schema $schema"
PGOPTIONS="-c search_path=$schema" sql -f deploy/postgres/pinterest.sql
sql -c "alter table $schema.pins add column visible_at timestamptz default clock_timestamp()"
listen=127.0.0.1:18481
"$OUT/flowrun" run pipelines/pinterest_ingest.yaml --set "KAFKA_BROKERS=$BROKERS" --set "TOPIC=$topic" --set "LISTEN=$listen" -q 2>"$OUT/ingest.log" &
ingest=$!
for _ in $(seq 100); do curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
/usr/bin/time -o "$OUT/fresh.time" -f "max RSS %M KB" "$OUT/flowrun" run pipelines/pinterest_streaming.yaml \
	--set "KAFKA_BROKERS=$BROKERS" --set "TOPIC=$topic" --set "GROUP=$topic" --set "PG_SCHEMA=$schema" --log-level warn -q 2>"$OUT/fresh.log" &
streaming=$!
sleep 3
"$OUT/flowrun" emulate --url "http://$listen/v1/posts" --rate "$RATE" --duration "${SECS}s" --count 0 --posters 32 --batch "$BATCH" --seed 5 --json -q >"$OUT/emulate.json" || true
sleep 3
# /usr/bin/time does not pass signals on: stop its child, the pipeline.
kill -INT "$(pgrep -P $streaming)" $ingest
wait $streaming $ingest || true
python3 - "$OUT/emulate.json" "$RATE" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency"]
print(f"freshness: emulator accepted {d['accepted']} posts at {d['accepted_rate']:.0f}/s (target {sys.argv[2]}/s), HTTP p50 {l['p50_ms']:.1f} ms, p99 {l['p99_ms']:.1f} ms")
PY
sql -tAc "select format('freshness (visible_at - ingested_at) over %s pins: p50 %s ms, p99 %s ms, max %s ms',
	count(*), round(percentile_cont(0.5) within group (order by ms)), round(percentile_cont(0.99) within group (order by ms)), round(max(ms)))
	from (select extract(epoch from visible_at - ingested_at) * 1000 ms from $schema.pins) s" | tee -a "$OUT/summary.txt"
echo "streaming process: $(cat "$OUT/fresh.time")" | tee -a "$OUT/summary.txt"
