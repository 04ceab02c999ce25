#!/usr/bin/env bash
# Kafka transport benchmark: flowrun's kafka sink and source against bare
# sarama clients on the same broker, the same posts and the same run.
#
#   bash bench/kafka/run.sh                      # N=1000000, REPEAT=3
#   N=300000 REPEAT=1 bash bench/kafka/run.sh    # quicker
#   CONSUME_ONLY=1 REPEAT=7 bash bench/kafka/run.sh  # the source only: the
#       topic is written once, then only the three readers run each round
#
# Per round: bareproducer -pregen (posts generated before its clock starts:
# the transport limit) → topic bench.kafka.pregen; bareproducer (posts
# generated and encoded inside its clock, as flowrun does) → topic
# bench.kafka.bare; flowrun generate_to_kafka.yaml → topic bench.kafka.flow
# (every topic recreated, 4 partitions); then, reading bench.kafka.bare:
# bareconsumer (count only: the transport limit), bareconsumer -decode
# (flowrun's jsondec into Arrow) and flowrun kafka_to_discard.yaml --once
# (decode to Arrow, discard sink, commits). Raw per-run lines go to
# bench/kafka/out/results.jsonl; the medians and the per-round ratios are
# printed as markdown. Needs Kafka at $BROKERS
# (scripts/services/kafka.sh up).
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-1000000}"
REPEAT="${REPEAT:-3}"
BROKERS="${BROKERS:-127.0.0.1:9092}"
BIN=bench/kafka/bin
OUT=bench/kafka/out
PROFILE="${PROFILE:-}" # set to 1 to write CPU profiles of the last round's runs to $OUT
CONSUME_ONLY="${CONSUME_ONLY:-}"
NICE="${NICE:-0}"      # e.g. NICE=-10 (as root): every benchmark process ahead of other jobs on the machine
RUN=(nice -n "$NICE")
mkdir -p "$BIN" "$OUT"
: >"$OUT/results.jsonl"

go build -o "$BIN/flowrun" ./cmd/flowrun
go build -o "$BIN/bareproducer" ./bench/kafka/bareproducer
go build -o "$BIN/bareconsumer" ./bench/kafka/bareconsumer
go build -o "$BIN/sinkbench" ./bench/kafka/sinkbench

echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  N=$N REPEAT=$REPEAT" >&2

# flowrun_run TOOL ARGS...: run flowrun, turn its summary into a result line.
# records = rows into the first sink (the node named in $SINK); seconds =
# the summary's elapsed time (connect to last ack, like the bare tools).
flowrun_run() {
	local tool=$1 bytes=$2
	shift 2
	local log="$OUT/$tool.log"
	"${RUN[@]}" /usr/bin/time -o "$OUT/$tool.time" -f "%U %S" "$BIN/flowrun" run "$@" --log-level warn 2>"$log" >/dev/null
	python3 - "$tool" "$bytes" "$log" "$OUT/$tool.time" <<'PY'
import json, re, sys
tool, nbytes, log = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
cpu = sum(float(x) for x in open(sys.argv[4]).read().split()[-2:])
m = re.search(r"([\d,]+) records read in ([\d.]+)(ms|s|m)", log)
if not m:
    sys.exit("no summary in " + sys.argv[3] + ":\n" + log)
recs = int(m.group(1).replace(",", ""))
secs = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
print(json.dumps({"tool": tool, "records": recs, "bytes": nbytes, "seconds": secs, "cpu_seconds": cpu,
                  "records_per_s": recs / secs, "mb_per_s": nbytes / secs / 1e6}))
PY
}

# Each round runs the bare client and flowrun back to back on the same
# topic, alternating which goes first (odd rounds bare first, even rounds
# flowrun first), so that load from anything else on the machine hits both.
# with_bytes TOPIC: the JSON line on stdin with "bytes" set to the value
# bytes in TOPIC (flowrun's messages are its own encoding of the posts).
# Run it after the producer has finished, not in a pipe beside it.
with_bytes() {
	local b
	b=$("$BIN/bareconsumer" -brokers "$BROKERS" -topic "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
	python3 -c 'import json,sys; d=json.load(sys.stdin); b=int(sys.argv[1]); d["bytes"]=b; d["mb_per_s"]=b/d["seconds"]/1e6; print(json.dumps(d))' "$b"
}
prof() { [[ -n $last ]] && echo "-cpuprofile=$OUT/$1.prof"; }
produce_bare() {
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.pregen -n 0 -create
	"${RUN[@]}" "$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.pregen -n "$N" -pregen $(prof bareproducer-pregen) | tee -a "$OUT/results.jsonl" >&2
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.bare -n 0 -create
	"${RUN[@]}" "$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.bare -n "$N" $(prof bareproducer) | tee -a "$OUT/results.jsonl" >&2
}
produce_sink() {
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.sink -n 0 -create
	local line
	line=$("${RUN[@]}" "$BIN/sinkbench" -brokers "$BROKERS" -topic bench.kafka.sink -n "$N" $(prof sink))
	echo "$line" | with_bytes bench.kafka.sink | tee -a "$OUT/results.jsonl" >&2
}
produce_flowrun() {
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.flow -n 0 -create
	# flowrun's messages are its own JSON encoding of the posts: count their bytes after.
	local line
	line=$(flowrun_run flowrun-produce 0 bench/kafka/generate_to_kafka.yaml --set N="$N" --set BROKERS="$BROKERS" --set TOPIC=bench.kafka.flow ${last:+--cpuprofile "$OUT/produce.prof"})
	echo "$line" | with_bytes bench.kafka.flow | tee -a "$OUT/results.jsonl" >&2
}
consume_bare() {
	"${RUN[@]}" "$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare $(prof bareconsumer) | tee -a "$OUT/results.jsonl" >&2
}
consume_decode() {
	"${RUN[@]}" "$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare -decode $(prof bareconsumer-decode) | tee -a "$OUT/results.jsonl" >&2
}
consume_flowrun() {
	local produced=("\"tool\":\"bareproducer\"" "$OUT/results.jsonl")
	[[ -n $CONSUME_ONLY ]] && produced=("\"tool\":\"bareproducer-pregen\"" "$OUT/produced.jsonl")
	bbytes=$(grep "${produced[@]}" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
	flowrun_run flowrun-consume "$bbytes" bench/kafka/kafka_to_discard.yaml --once --set BROKERS="$BROKERS" --set TOPIC=bench.kafka.bare --set GROUP="bench-discard-$$-$r" ${last:+--cpuprofile "$OUT/consume.prof"} | tee -a "$OUT/results.jsonl" >&2
}

if [[ -n $CONSUME_ONLY ]]; then
	# One topic for every round; its bare producer line gives the bytes.
	last=""
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.bare -n 0 -create
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.bare -n "$N" -pregen >"$OUT/produced.jsonl"
fi
for r in $(seq 1 "$REPEAT"); do
	last=""
	[[ -n $PROFILE && $r == "$REPEAT" ]] && last=1
	echo "round $r/$REPEAT, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	echo "{\"round\": $r, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT/results.jsonl"
	if [[ -n $CONSUME_ONLY ]]; then
		"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare >/dev/null # warm the broker's page cache
		if ((r % 2)); then
			consume_bare
			consume_flowrun
			consume_decode
		else
			consume_decode
			consume_flowrun
			consume_bare
		fi
		continue
	fi
	if ((r % 2)); then
		produce_bare
		produce_sink
		produce_flowrun
		"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare >/dev/null # warm the broker's page cache
		consume_bare
		consume_flowrun
		consume_decode
	else
		produce_flowrun
		produce_sink
		produce_bare
		"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare >/dev/null
		consume_decode
		consume_flowrun
		consume_bare
	fi
done

python3 - "$OUT/results.jsonl" "$N" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loads = [r["load"] for r in rows if "load" in r]
# rounds[i][tool] = result of that tool in round i
rounds, cur = [], None
for r in rows:
    if "round" in r:
        cur = {}
        rounds.append(cur)
    elif "tool" in r:
        cur[r["tool"]] = r
def vals(tool, key):
    return [rd[tool][key] for rd in rounds if tool in rd]
def med(tool, key):
    return statistics.median(vals(tool, key))
def ratios(tool, base):
    return [rd[tool]["records_per_s"] / rd[base]["records_per_s"] for rd in rounds if tool in rd and base in rd]
print(f"N = {int(sys.argv[2]):,} posts, {len(rounds)} rounds, medians; load (1/5/15 min) at each round: {'; '.join(loads)}\n")
print("| direction | client | records/s | MB/s | seconds | CPU s | records / CPU s | msg bytes |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for direction, tool in [("produce", "bareproducer-pregen"), ("produce", "flowrun-sink"), ("produce", "bareproducer"), ("produce", "flowrun-produce"),
                        ("consume", "bareconsumer"), ("consume", "bareconsumer-decode"), ("consume", "flowrun-consume")]:
    if tool not in rounds[0]:
        continue  # not run (CONSUME_ONLY)
    r0 = rounds[0][tool]
    print(f"| {direction} | {tool} | {med(tool, 'records_per_s'):,.0f} | {med(tool, 'mb_per_s'):.1f} | {med(tool, 'seconds'):.2f} | {med(tool, 'cpu_seconds'):.2f} | {statistics.median(r['records'] / r['cpu_seconds'] for r in (rd[tool] for rd in rounds)):,.0f} | {r0['bytes'] / r0['records']:.0f} |")
print()
print("Ratios: the median of the per-round ratios of records/s (flowrun / bare in the same round); CPU efficiency is the median per-round ratio of CPU seconds (bare / flowrun).\n")
for label, tool, base in [
        ("**kafka sink vs the transport limit** (flowrun-sink: Arrow batches ready before the clock, the sink encodes and produces; bareproducer-pregen: JSON messages ready before the clock)", "flowrun-sink", "bareproducer-pregen"),
        ("pipeline like for like (flowrun generate → kafka vs bareproducer: both generate and encode inside the clock)", "flowrun-produce", "bareproducer"),
        ("pipeline vs the transport limit (flowrun generate → kafka vs bareproducer-pregen)", "flowrun-produce", "bareproducer-pregen"),
        ("**consume vs the transport limit** (bareconsumer: count only)", "flowrun-consume", "bareconsumer"),
        ("consume like for like (bareconsumer -decode: flowrun's jsondec into Arrow, no group, no commits)", "flowrun-consume", "bareconsumer-decode")]:
    rs = ratios(tool, base)
    if not rs:
        continue
    cs = [rd[base]["cpu_seconds"] / rd[tool]["cpu_seconds"] for rd in rounds if tool in rd and base in rd]
    print(f"- {label}: {statistics.median(rs) * 100:.0f}% (rounds: {', '.join(f'{x * 100:.0f}%' for x in rs)}); CPU efficiency {statistics.median(cs) * 100:.0f}%")
PY
