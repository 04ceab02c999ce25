#!/usr/bin/env bash
# The product's main job end to end, on one machine:
#   emulator → ingest API (pipelines/pinterest_ingest.yaml) → Kafka (the
#   embedded broker) → cleaning (pipelines/pinterest_streaming.yaml)
#   → PostgreSQL tables pins, post_arrivals and dead_letters, exactly once,
#   and category_counts (posts per category and minute)
#
#   bash scripts/quickstart.sh [POSTS]       (default 5000)
#
# PostgreSQL is the one at POSTGRES_URL when that is set; otherwise the local
# server that scripts/services/postgres.sh installs (Debian's postgresql,
# needs root or sudo) and starts. The tables live in schema QS_SCHEMA
# (default quickstart), emptied at the start, so a run touches nothing else.
# Both pipelines use `brokers: embedded`; --embedded-kafka makes the ingest
# process serve its in-process broker on a fixed port that the streaming
# process joins. The file-only path needs no server at all:
#   go run ./cmd/flowrun run examples/pinterest_local.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
posts=${1:-5000}
schema=${QS_SCHEMA:-quickstart}
tmp=$(mktemp -d)
bin=$tmp/flowrun
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

if [[ -z ${POSTGRES_URL:-} ]]; then
	echo "PostgreSQL: starting the local server (scripts/services/postgres.sh up)" >&2
	bash scripts/services/postgres.sh up
	eval "$(bash scripts/services/postgres.sh env)"
fi
export POSTGRES_URL # read by the pipeline's ${POSTGRES_URL}: never on a command line
command -v psql >/dev/null || {
	echo "quickstart: psql not found (apt-get install postgresql-client)" >&2
	exit 1
}
sql() { PGOPTIONS="-c search_path=$schema" psql "$POSTGRES_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql -c "drop schema if exists $schema cascade" -c "create schema $schema" 2>/dev/null
sql -f deploy/postgres/pinterest.sql

go build -o "$bin" ./cmd/flowrun
# free_port N: the first port from N up that nothing listens on.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
broker=127.0.0.1:$(free_port 19092)
listen=127.0.0.1:$(free_port 8080)

"$bin" run pipelines/pinterest_ingest.yaml --embedded-kafka $broker --set LISTEN=$listen 2>"$tmp/ingest.log" &
ingest=$!
for _ in $(seq 100); do
	curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break
	kill -0 $ingest 2>/dev/null || {
		cat "$tmp/ingest.log" >&2
		exit 1
	}
	sleep 0.1
done
"$bin" run pipelines/pinterest_streaming.yaml --embedded-kafka $broker --set PG_SCHEMA="$schema" &
streaming=$!

"$bin" emulate --url "http://$listen/v1/posts" --count "$posts" --rate 2000 --posters 16 --seed 1 --json >"$tmp/emulate.json"
accepted=$(grep -o '"accepted": *[0-9]*' "$tmp/emulate.json" | grep -o '[0-9]*$')

# Wait until pins has stored the offset of every accepted post (each sink
# stores its Kafka offsets in the transaction that writes its rows; pins
# hears of every post, even those that became dead letters), then stop both
# pipelines: each drains what is in flight, flushes and commits.
stored() {
	sql -tAc "select coalesce(sum(next_offset), 0) from flowrun_offsets
	          where pipeline = 'pinterest-streaming' and sink = 'pins'"
}
last=-1 still=0
for _ in $(seq 240); do
	[[ $(stored) -ge $accepted ]] && break
	# (Without source offsets, e.g. an older broker: wait until the tables
	# stop growing for 5s.)
	n=$(sql -tAc "select (select count(*) from pins) + (select count(*) from dead_letters)")
	if [[ $n -gt 0 && $n -eq $last ]]; then still=$((still + 1)); else still=0; fi
	[[ $still -ge 10 ]] && break
	last=$n
	sleep 0.5
done
kill -INT $streaming && wait $streaming
# A stop is not the end of the input: the streaming pipeline wrote the
# minutes its watermark had passed and left the open ones (the last minute
# or two of this short run) uncommitted in Kafka. A bounded run (--once)
# reads the topic from there to its end and writes every minute still
# open; pins, post_arrivals and dead_letters skip what they already hold.
"$bin" run pipelines/pinterest_streaming.yaml --once --embedded-kafka $broker --set PG_SCHEMA="$schema" 2>"$tmp/once.log" || {
	cat "$tmp/once.log" >&2
	exit 1
}
kill -INT $ingest && wait $ingest

pins=$(sql -tAc "select count(*) from pins")
dead=$(sql -tAc "select count(*) from dead_letters")
offsets=$(sql -tAc "select coalesce(sum(next_offset), 0) from flowrun_offsets where pipeline = 'pinterest-streaming' and sink = 'pins'")
cat <<EOF

posts accepted by the ingest API:     $accepted
Kafka offsets covered by the sinks:   $offsets   (flowrun_offsets, same transactions as the rows: the posts and the commit markers of the ingest API's Kafka transactions)
  pins (one per valid unique_id):     $pins   (select count(*) from $schema.pins)
  later versions of an existing pin:  $((accepted - dead - pins))   (upserted into the same row)
  dead letters:                       $dead   (select count(*) from $schema.dead_letters)
EOF
sql -tAc "select '    ' || rpad(node || ': ' || reason, 40) || count(*) from dead_letters group by node, reason order by count(*) desc"
counted=$(sql -tAc "select coalesce(sum(posts), 0) from category_counts")
arrived=$(sql -tAc "select count(*) from post_arrivals")
late=$(sql -tAc "select count(*) from dead_letters where node = 'category_counts'")
cat <<EOF

category_counts (posts received per category and minute of ingested_at):
  posts counted: $counted   (post_arrivals $arrived, late $late)
EOF
sql -c "select category, to_char(window_start at time zone 'UTC', 'HH24:MI') as minute, posts,
               total_followers, round(avg_followers) as avg_followers,
               round(video_share::numeric, 2) as video_share, round(story_share::numeric, 2) as story_share
        from category_counts order by window_start, posts desc, category"
echo
echo "Look around: psql \"\$POSTGRES_URL\" -c 'select category, count(*) from $schema.pins group by 1 order by 2 desc'"
