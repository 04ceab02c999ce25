#!/usr/bin/env bash
# Kafka transport benchmark: flowrun's kafka sink and source against bare
# sarama clients on the same broker, the same posts and the same run.
#
#   bash bench/kafka/run.sh                      # N=1000000, REPEAT=3
#   N=300000 REPEAT=1 bash bench/kafka/run.sh    # quicker
#
# Per round: bareproducer -pregen (posts generated before its clock starts)
# → topic bench.kafka.pregen; bareproducer (posts generated and encoded
# inside its clock, as flowrun does) → topic bench.kafka.bare; flowrun
# generate_to_kafka.yaml → topic bench.kafka.flow (every topic recreated, 4
# partitions); then, reading bench.kafka.bare: bareconsumer (count only),
# bareconsumer -decode (encoding/json into a struct) and flowrun
# kafka_to_discard.yaml --once (decode to Arrow, discard sink).
# Raw per-run lines go to bench/kafka/out/results.jsonl; the medians are
# printed as a markdown table. Needs Kafka at $BROKERS
# (scripts/services/kafka.sh up).
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-1000000}"
REPEAT="${REPEAT:-3}"
BROKERS="${BROKERS:-127.0.0.1:9092}"
BIN=bench/kafka/bin
OUT=bench/kafka/out
PROFILE="${PROFILE:-}" # set to 1 to write CPU profiles of the last round's flowrun runs to $OUT
mkdir -p "$BIN" "$OUT"
: >"$OUT/results.jsonl"

go build -o "$BIN/flowrun" ./cmd/flowrun
go build -o "$BIN/bareproducer" ./bench/kafka/bareproducer
go build -o "$BIN/bareconsumer" ./bench/kafka/bareconsumer

echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  N=$N REPEAT=$REPEAT" >&2

# flowrun_run TOOL ARGS...: run flowrun, turn its summary into a result line.
# records = rows into the first sink (the node named in $SINK); seconds =
# the summary's elapsed time (connect to last ack, like the bare tools).
flowrun_run() {
	local tool=$1 bytes=$2
	shift 2
	local log="$OUT/$tool.log"
	"$BIN/flowrun" run "$@" --log-level warn 2>"$log" >/dev/null
	python3 - "$tool" "$bytes" "$log" <<'PY'
import json, re, sys
tool, nbytes, log = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
m = re.search(r"([\d,]+) records read in ([\d.]+)(ms|s|m)", log)
if not m:
    sys.exit("no summary in " + sys.argv[3] + ":\n" + log)
recs = int(m.group(1).replace(",", ""))
secs = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
print(json.dumps({"tool": tool, "records": recs, "bytes": nbytes, "seconds": secs,
                  "records_per_s": recs / secs, "mb_per_s": nbytes / secs / 1e6}))
PY
}

for r in $(seq 1 "$REPEAT"); do
	last=""
	[[ -n $PROFILE && $r == "$REPEAT" ]] && last=1
	echo "round $r/$REPEAT, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	echo "{\"round\": $r, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT/results.jsonl"
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.pregen -n "$N" -create -pregen | tee -a "$OUT/results.jsonl" >&2
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.bare -n "$N" -create | tee -a "$OUT/results.jsonl" >&2
	"$BIN/bareproducer" -brokers "$BROKERS" -topic bench.kafka.flow -n 0 -create
	"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare >/dev/null # warm the broker's page cache
	# flowrun's messages are its own JSON encoding of the posts: count their bytes after.
	line=$(flowrun_run flowrun-produce 0 bench/kafka/generate_to_kafka.yaml --set N="$N" --set BROKERS="$BROKERS" --set TOPIC=bench.kafka.flow ${last:+--cpuprofile "$OUT/produce.prof"})
	fbytes=$("$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.flow | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
	echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); b=int(sys.argv[1]); d["bytes"]=b; d["mb_per_s"]=b/d["seconds"]/1e6; print(json.dumps(d))' "$fbytes" | tee -a "$OUT/results.jsonl" >&2
	bbytes=$(grep '"tool":"bareproducer"' "$OUT/results.jsonl" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
	"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare | tee -a "$OUT/results.jsonl" >&2
	"$BIN/bareconsumer" -brokers "$BROKERS" -topic bench.kafka.bare -decode | sed 's/"bareconsumer"/"bareconsumer-decode"/' | tee -a "$OUT/results.jsonl" >&2
	flowrun_run flowrun-consume "$bbytes" bench/kafka/kafka_to_discard.yaml --once --set BROKERS="$BROKERS" --set TOPIC=bench.kafka.bare --set GROUP="bench-discard-$$-$r" ${last:+--cpuprofile "$OUT/consume.prof"} | tee -a "$OUT/results.jsonl" >&2
done

python3 - "$OUT/results.jsonl" "$N" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loads = [r["load"] for r in rows if "load" in r]
by = {}
for r in rows:
    if "tool" in r:
        by.setdefault(r["tool"], []).append(r)
def med(tool, key):
    return statistics.median(x[key] for x in by[tool])
print(f"N = {int(sys.argv[2]):,} posts, {len(by['bareproducer'])} rounds, median; load (1/5/15 min) at each round: {'; '.join(loads)}\n")
print("| direction | client | records/s | MB/s | seconds | msg bytes | flowrun / bare |")
print("|---|---|---:|---:|---:|---:|---:|")
def row(direction, tool, base=None):
    rps = med(tool, "records_per_s")
    ratio = f"{rps / med(base, 'records_per_s') * 100:.0f}%" if base else ""
    b = by[tool][0]["bytes"] / by[tool][0]["records"]
    print(f"| {direction} | {tool} | {rps:,.0f} | {med(tool, 'mb_per_s'):.1f} | {med(tool, 'seconds'):.2f} | {b:.0f} | {ratio} |")
row("produce", "bareproducer-pregen")
row("produce", "bareproducer")
row("produce", "flowrun-produce", "bareproducer")
row("consume", "bareconsumer")
row("consume", "bareconsumer-decode")
row("consume", "flowrun-consume", "bareconsumer")
print()
def ratios(tool, base):
    per = [f"{a['records_per_s'] / b['records_per_s'] * 100:.0f}%" for a, b in zip(by[tool], by[base])]
    return f"{med(tool, 'records_per_s') / med(base, 'records_per_s') * 100:.0f}% (rounds: {', '.join(per)})"
print(f"- flowrun-produce vs bareproducer (generates inside its clock): {ratios('flowrun-produce', 'bareproducer')}")
print(f"- flowrun-produce vs bareproducer-pregen (posts ready before its clock): {ratios('flowrun-produce', 'bareproducer-pregen')}")
print(f"- flowrun-consume vs bareconsumer (count only, transport limit): {ratios('flowrun-consume', 'bareconsumer')}")
print(f"- flowrun-consume vs bareconsumer-decode (+ encoding/json): {ratios('flowrun-consume', 'bareconsumer-decode')}")
PY
