package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowrun/flowrun/internal/cutproxy"
	"github.com/flowrun/flowrun/internal/testenv"
	"github.com/flowrun/flowrun/operators/kafkaclient"
	"github.com/flowrun/flowrun/operators/source/generate/posts"
)

// streamInput is a generated stream of posts for pipelines/
// pinterest_streaming.yaml, with what the tables must hold afterwards.
type streamInput struct {
	keys, lines []string
	// pins: unique_id → the index of its last valid version and the
	// ingested_at of its first.
	pins map[string]pinWant
	// dead: "node index" of every record that must be a dead letter, once.
	dead map[string]bool
}

type pinWant struct {
	ind      int64
	first    time.Time
	category string
}

var base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// makeStream generates n posts (seeded) with every kind of dirty record:
// the generator's placeholders, missing ids and categories and repeated
// ids, plus unique_ids that are not UUIDs, follower counts that do not
// parse and messages that are not JSON. Each post's index is its position
// and its ingested_at is unique, so versions and dead letters can be told
// apart. The Kafka key is the unique_id, so the versions of one id are in
// one partition, in order. refused (may be nil) names the valid posts the
// table itself will refuse (asked only about ids sent once: which of
// several versions in one transaction reach the table is the sink's
// choice, the last): their title is set to "REFUSE <i>", and they are dead
// letters of node pins.
func makeStream(seed int64, n int, refused func(i int) bool) streamInput {
	in := streamInput{pins: map[string]pinWant{}, dead: map[string]bool{}}
	gen := posts.New(seed)
	all := make([]posts.Post, n)
	times := map[string]int{}
	for i := range all {
		gen.Next(&all[i])
		times[all[i].UniqueID]++
	}
	for i := range n {
		p := all[i]
		p.Index = int64(i)
		at := base.Add(time.Duration(i) * time.Millisecond)
		switch {
		case i%397 == 5:
			line := fmt.Sprintf(`{"index":%d, "unique_id": not json`, i)
			in.keys, in.lines = append(in.keys, "junk"), append(in.lines, line)
			in.dead[fmt.Sprintf("posts %d", i)] = true
			continue
		case i%211 == 7:
			p.FollowerCount = "lots"
		case i%101 == 3:
			p.UniqueID = fmt.Sprintf("not-a-uuid-%d", i)
			p.MissingUniqueID = false
		case refused != nil && times[p.UniqueID] == 1 && !p.MissingUniqueID && !p.MissingCategory && refused(i):
			p.Title = fmt.Sprintf("REFUSE %d", i)
		}
		js := posts.AppendJSON(nil, &p)
		line := string(js[:len(js)-1]) + fmt.Sprintf(`,"ingested_at":%q}`, at.Format(time.RFC3339Nano))
		key := p.UniqueID
		if p.MissingUniqueID {
			key = "none"
		}
		in.keys, in.lines = append(in.keys, key), append(in.lines, line)
		switch {
		case p.FollowerCount == "lots":
			in.dead[fmt.Sprintf("clean %d", i)] = true
		case p.MissingUniqueID:
			in.dead[fmt.Sprintf("valid %d", i)] = true
		case strings.HasPrefix(p.UniqueID, "not-a-uuid"):
			in.dead[fmt.Sprintf("valid %d", i)] = true
		case p.MissingCategory:
			in.dead[fmt.Sprintf("valid %d", i)] = true
		case strings.HasPrefix(p.Title, "REFUSE "):
			in.dead[fmt.Sprintf("pins %d", i)] = true
		default:
			w, seen := in.pins[p.UniqueID]
			if !seen {
				w.first = at
			}
			w.ind, w.category = p.Index, p.Category
			in.pins[p.UniqueID] = w
		}
	}
	return in
}

// produceKeyed writes the lines with their keys to topic with kcat.
func produceKeyed(t *testing.T, brokers []string, topic string, keys, lines []string) {
	t.Helper()
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(keys[i])
		b.WriteByte('\t')
		b.WriteString(l)
		b.WriteByte('\n')
	}
	cmd := exec.Command("kcat", "-P", "-b", strings.Join(brokers, ","), "-t", topic, "-K", "\t")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
}

// endOffsets returns the next offset of every partition of topic.
func endOffsets(t *testing.T, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	c, err := sarama.NewClient(brokers, kafkaclient.NewConfig("test-offsets"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		off, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = off
	}
	return out
}

// pgSchema is one test's schema in the shared database.
type pgSchema struct {
	url, name string
	conn      *pgx.Conn
}

func newPGSchema(t *testing.T, withSQL bool) *pgSchema {
	t.Helper()
	url := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("e2e_%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), rand.IntN(1_000_000))
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	if _, err := conn.Exec(ctx, "create schema "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			_, _ = conn.Exec(context.Background(), "drop schema "+pgx.Identifier{name}.Sanitize()+" cascade")
		} else {
			t.Logf("schema %s kept for inspection", name)
		}
		_ = conn.Close(context.Background())
	})
	s := &pgSchema{url: url, name: name, conn: conn}
	if withSQL {
		sql, err := os.ReadFile(repoRoot + "/deploy/postgres/pinterest.sql")
		if err != nil {
			t.Fatal(err)
		}
		s.exec(t, "set search_path = "+pgx.Identifier{name}.Sanitize())
		s.exec(t, string(sql))
		s.exec(t, "reset search_path")
	}
	return s
}

func (s *pgSchema) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := s.conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%.80s: %v", sql, err)
	}
}

func (s *pgSchema) int(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	if err := s.conn.QueryRow(context.Background(), strings.ReplaceAll(sql, "$S.", pgx.Identifier{s.name}.Sanitize()+".")).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// storedOffsets returns the offsets the sink stored for topic.
func (s *pgSchema) storedOffsets(t *testing.T, sink, topic string) map[int32]int64 {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), "select partition, next_offset from "+pgx.Identifier{s.name, "flowrun_offsets"}.Sanitize()+
		" where pipeline = 'pinterest-streaming' and sink = $1 and topic = $2", sink, topic)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42P01" {
		return nil // the sink has not created the table yet
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		out[p] = n
	}
	return out
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

var indexRE = regexp.MustCompile(`"ind(?:ex)?":\s*(\d+)`)

// check compares the tables with what in says, exactly.
func (s *pgSchema) check(t *testing.T, in streamInput, brokers []string, topic string) {
	t.Helper()
	ctx := context.Background()
	rows, err := s.conn.Query(ctx, "select unique_id::text, ind, ingested_at, category from "+pgx.Identifier{s.name, "pins"}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pinWant{}
	for rows.Next() {
		var id string
		var w pinWant
		if err := rows.Scan(&id, &w.ind, &w.first, &w.category); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[id]; dup {
			t.Errorf("pin %s twice", id)
		}
		got[id] = w
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantPins := in.pins
	bad := 0
	for id, w := range wantPins {
		g, ok := got[id]
		switch {
		case !ok:
			bad++
			if bad <= 5 {
				t.Errorf("pin %s missing", id)
			}
		case g.ind != w.ind || !g.first.Equal(w.first) || g.category != w.category:
			bad++
			if bad <= 5 {
				t.Errorf("pin %s = ind %d, ingested_at %s, %s; want the last version %d, the first ingested_at %s, %s",
					id, g.ind, g.first.UTC().Format(time.RFC3339Nano), g.category, w.ind, w.first.Format(time.RFC3339Nano), w.category)
			}
		}
	}
	for id := range got {
		if _, ok := wantPins[id]; !ok {
			t.Errorf("unexpected pin %s", id)
		}
	}
	if len(got) != len(wantPins) || bad > 0 {
		t.Errorf("pins: %d rows, want %d (%d wrong)", len(got), len(wantPins), bad)
	}

	rows, err = s.conn.Query(ctx, "select node, record, reason from "+pgx.Identifier{s.name, "dead_letters"}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for rows.Next() {
		var node, rec, reason string
		if err := rows.Scan(&node, &rec, &reason); err != nil {
			t.Fatal(err)
		}
		m := indexRE.FindStringSubmatch(rec)
		if m == nil {
			t.Errorf("dead letter without an index: %s %s %.200s", node, reason, rec)
			continue
		}
		seen[node+" "+m[1]]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := in.dead
	missing, dup, extra := 0, 0, 0
	for k := range want {
		switch c := seen[k]; {
		case c == 0:
			missing++
			if missing <= 5 {
				t.Errorf("dead letter %q missing", k)
			}
		case c > 1:
			dup++
			if dup <= 5 {
				t.Errorf("dead letter %q stored %d times", k, c)
			}
		}
	}
	for k := range seen {
		if !want[k] {
			extra++
			if extra <= 5 {
				t.Errorf("unexpected dead letter %q", k)
			}
		}
	}
	if missing+dup+extra > 0 {
		t.Errorf("dead letters: %d missing, %d duplicated, %d unexpected (of %d)", missing, dup, extra, len(want))
	}

	end := endOffsets(t, brokers, topic)
	if stored := s.storedOffsets(t, "pins", topic); fmt.Sprint(stored) != fmt.Sprint(end) {
		t.Errorf("flowrun_offsets for pins = %v, want the topic's end offsets %v", stored, end)
	}
	t.Logf("checked: %d pins, %d dead letters, end offsets %v", len(got), len(want), end)
}

// streaming runs pipelines/pinterest_streaming.yaml on topic into schema s.
func streaming(t *testing.T, name string, brokers []string, topic, pgURL string, s *pgSchema) *proc {
	t.Helper()
	return flowrun(t, name, "pipelines/pinterest_streaming.yaml", map[string]string{
		"KAFKA_BROKERS": brokers[0], "TOPIC": topic, "GROUP": topic + "-group", "PG_SCHEMA": s.name,
	}, []string{"POSTGRES_URL=" + pgURL})
}

// settle gives a process that may have found nothing to do the time to
// install its signal handlers before the test stops it.
func settle(p *proc) {
	if d := time.Until(p.started.Add(3 * time.Second)); d > 0 {
		time.Sleep(d)
	}
}

// waitStored waits until the pins sink stored the topic's end offsets.
func (s *pgSchema) waitStored(t *testing.T, brokers []string, topic string, procs []*proc, timeout time.Duration) {
	t.Helper()
	end := sumOffsets(endOffsets(t, brokers, topic))
	if !eventually(timeout, func() bool {
		for _, p := range procs {
			if p.exited() {
				return true
			}
		}
		return sumOffsets(s.storedOffsets(t, "pins", topic)) >= end
	}) {
		t.Fatalf("pins stored %d of %d offsets within %s", sumOffsets(s.storedOffsets(t, "pins", topic)), end, timeout)
	}
	for _, p := range procs {
		if p.exited() {
			t.Fatalf("%s exited with %d", p.name, p.exitCode)
		}
	}
}

// TestStreamingSigkillExactlyOnce is the kill test of issue 8: 200,000
// generated posts (FLOWRUN_KILL_TEST_POSTS changes it) (duplicate ids, placeholders,
// missing ids and categories, ids that are not UUIDs, counts that do not
// parse, messages that are not JSON) on a 4-partition topic; the pipeline
// process is SIGKILLed at 5 random moments while it writes and restarted
// each time. At the end pins holds exactly the distinct valid unique_ids
// with the last version of each (and the first ingested_at), every bad
// record is in dead_letters exactly once, and flowrun_offsets equals the
// topic's end offsets.
func TestStreamingSigkillExactlyOnce(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.Postgres(t)
	testenv.Tool(t, "kcat", "apt-get install -y kcat") // produceKeyed
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("FLOWRUN_KILL_TEST_POSTS")); err == nil && v > 0 {
		n = v
	}
	in := makeStream(31, n, nil)
	topic := "flowrun-kill-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	produceKeyed(t, brokers, topic, in.keys, in.lines)
	s := newPGSchema(t, true)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 8))
	t.Logf("kill moments from seed %d", seed)
	end := sumOffsets(endOffsets(t, brokers, topic))
	t0 := time.Now()
	for i := range 5 {
		p := streaming(t, fmt.Sprintf("streaming run %d", i+1), brokers, topic, s.url, s)
		// Each run is killed after it has stored a random further 3–15%
		// of the input, plus a random few hundred milliseconds: mid-write.
		before := sumOffsets(s.storedOffsets(t, "pins", topic))
		target := min(before+int64((0.03+0.12*rng.Float64())*float64(end)), end-1)
		// A guard against a run that stopped making progress, not a speed
		// target: on a loaded machine a restart first waits for the killed
		// member to leave the group, and one run may take over a minute.
		deadline := time.Now().Add(150 * time.Second)
		for !p.exited() && sumOffsets(s.storedOffsets(t, "pins", topic)) < target {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: did not reach offset %d", i+1, target)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if p.exited() {
			t.Fatalf("run %d exited with %d", i+1, p.exitCode)
		}
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 10*time.Second)
		t.Logf("run %d: SIGKILL after %d stored offsets (from %d; target %d of %d)", i+1,
			sumOffsets(s.storedOffsets(t, "pins", topic)), before, target, end)
	}
	last := streaming(t, "streaming final", brokers, topic, s.url, s)
	s.waitStored(t, brokers, topic, []*proc{last}, 90*time.Second)
	settle(last)
	last.stop(t)
	t.Logf("%d posts, 5 kills: %s", n, time.Since(t0).Round(time.Millisecond))
	s.check(t, in, brokers, topic)
}

// TestStreamingScaleOut: the same kind of input through two processes in
// one consumer group, the second started halfway (a rebalance), gives
// exactly the tables one process gives. The tables are created by the
// pipeline itself here (create: true on an empty schema).
func TestStreamingScaleOut(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.Postgres(t)
	testenv.Tool(t, "kcat", "apt-get install -y kcat") // produceKeyed
	in := makeStream(37, 30_000, nil)
	topic := "flowrun-scale-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	produceKeyed(t, brokers, topic, in.keys, in.lines)
	s := newPGSchema(t, false)
	end := sumOffsets(endOffsets(t, brokers, topic))
	a := streaming(t, "streaming A", brokers, topic, s.url, s)
	if !eventually(60*time.Second, func() bool {
		return a.exited() || sumOffsets(s.storedOffsets(t, "pins", topic)) >= end/2
	}) || a.exited() {
		t.Fatal("A did not reach half the input")
	}
	b := streaming(t, "streaming B", brokers, topic, s.url, s)
	s.waitStored(t, brokers, topic, []*proc{a, b}, 90*time.Second)
	settle(b)
	a.stop(t)
	b.stop(t)
	s.check(t, in, brokers, topic)
}

// TestStreamingBadRowsInTable: the pins table refuses some rows (a CHECK
// constraint the cleaning does not know): every other row lands, and each
// refused row is a dead letter of node pins with PostgreSQL's reason, once,
// even though the process is SIGKILLed once on the way.
func TestStreamingBadRowsInTable(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.Postgres(t)
	testenv.Tool(t, "kcat", "apt-get install -y kcat") // produceKeyed
	in := makeStream(41, 40_000, func(i int) bool { return i%250 == 77 })
	topic := "flowrun-badrows-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	produceKeyed(t, brokers, topic, in.keys, in.lines)
	s := newPGSchema(t, true)
	s.exec(t, "alter table "+pgx.Identifier{s.name, "pins"}.Sanitize()+" add constraint no_77 check (title not like 'REFUSE %')")
	first := streaming(t, "streaming killed", brokers, topic, s.url, s)
	for !first.exited() && sumOffsets(s.storedOffsets(t, "pins", topic)) < int64(len(in.lines)/3) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 10*time.Second)
	p := streaming(t, "streaming", brokers, topic, s.url, s)
	s.waitStored(t, brokers, topic, []*proc{p}, 60*time.Second)
	settle(p)
	p.stop(t)
	refused := s.int(t, "select count(*) from $S.dead_letters where node = 'pins'")
	withReason := s.int(t, "select count(*) from $S.dead_letters where node = 'pins' and reason = 'postgres: new row for relation \"pins\" violates check constraint \"no_77\" (SQLSTATE 23514)'")
	if refused == 0 || withReason != refused {
		t.Errorf("dead letters of node pins: %d, %d of them with PostgreSQL's reason", refused, withReason)
	}
	s.check(t, in, brokers, topic)
}

// TestStreamingPostgresOutage: the connection between the pipeline and
// PostgreSQL is cut for 10s mid-stream (a proxy the test owns, so the
// shared server keeps serving everybody else): the pipeline waits and
// retries, loses nothing and duplicates nothing.
func TestStreamingPostgresOutage(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.Postgres(t)
	testenv.Tool(t, "kcat", "apt-get install -y kcat") // produceKeyed
	in := makeStream(43, 20_000, nil)
	topic := "flowrun-outage-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := kafkaclient.CreateTopics(brokers, 4, topic); err != nil {
		t.Fatal(err)
	}
	s := newPGSchema(t, true)
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	px, err := cutproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	viaProxy := strings.Replace(s.url, target, px.Addr, 1)
	if viaProxy == s.url {
		t.Fatalf("cannot route %s through the proxy", target)
	}
	// Half the posts first, then the outage while the rest arrive.
	half := len(in.lines) / 2
	produceKeyed(t, brokers, topic, in.keys[:half], in.lines[:half])
	p := streaming(t, "streaming", brokers, topic, viaProxy, s)
	if !eventually(60*time.Second, func() bool {
		return p.exited() || sumOffsets(s.storedOffsets(t, "pins", topic)) >= int64(half/2)
	}) || p.exited() {
		t.Fatal("no progress before the outage")
	}
	px.Cut()
	t.Logf("outage starts at %d stored offsets", sumOffsets(s.storedOffsets(t, "pins", topic)))
	produceKeyed(t, brokers, topic, in.keys[half:], in.lines[half:])
	time.Sleep(10 * time.Second)
	if p.exited() {
		t.Fatalf("the pipeline exited (%d) during the outage", p.exitCode)
	}
	during := sumOffsets(s.storedOffsets(t, "pins", topic))
	px.Resume()
	s.waitStored(t, brokers, topic, []*proc{p}, 90*time.Second)
	p.stop(t)
	if px.Cuts.Load() == 0 {
		t.Fatal("the proxy cut no connection")
	}
	t.Logf("after the outage: %d stored offsets during it, connections cut: %d", during, px.Cuts.Load())
	s.check(t, in, brokers, topic)
}

// TestQuickstartScript runs the README's first command (scripts/
// quickstart.sh: emulator → ingest API → embedded Kafka →
// pinterest_streaming.yaml → PostgreSQL) on 2,000 posts in a schema of its
// own, and checks that what it prints accounts for every post and matches
// the tables, category_counts included.
func TestQuickstartScript(t *testing.T) {
	url := testenv.Postgres(t)
	testenv.Tool(t, "psql", "apt-get install -y postgresql-client") // scripts/quickstart.sh
	s := newPGSchema(t, false)
	cmd := exec.Command("bash", "scripts/quickstart.sh", "2000")
	cmd.Dir = repoRoot
	cmd.Env = append(childEnv(), "POSTGRES_URL="+url, "QS_SCHEMA="+s.name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	num := func(label string) int64 {
		m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s+(\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %q in the output:\n%s", label, out)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	// The offsets cover every post and the markers of the ingest API's
	// Kafka transactions (one per partition a transaction wrote to).
	accepted, offsets := num("posts accepted by the ingest API:"), num("Kafka offsets covered by the sinks:")
	pins, later, dead := num("pins (one per valid unique_id):"), num("later versions of an existing pin:"), num("dead letters:")
	if accepted != 2000 || offsets < accepted || pins+later+dead != accepted || later < 0 {
		t.Fatalf("accepted %d, offsets %d, pins %d + later %d + dead %d:\n%s", accepted, offsets, pins, later, dead, out)
	}
	if got := s.int(t, "select count(*) from $S.pins"); got != pins {
		t.Errorf("pins table %d rows, printed %d", got, pins)
	}
	if got := s.int(t, "select count(*) from $S.dead_letters"); got != dead {
		t.Errorf("dead_letters table %d rows, printed %d", got, dead)
	}
	// The category counts: the bounded run at the end closes the minutes
	// the stopped streaming run left open, so every valid post is counted
	// (or, arriving behind its closed minute, a late dead letter).
	counted, arrived, late := num("posts counted:"), num("(post_arrivals"), num("late")
	if counted == 0 || counted+late != arrived || arrived != pins+later {
		t.Errorf("category_counts: counted %d + late %d, post_arrivals %d, valid posts %d:\n%s", counted, late, arrived, pins+later, out)
	}
	if got := s.int(t, "select coalesce(sum(posts), 0) from $S.category_counts"); got != counted {
		t.Errorf("category_counts holds %d posts, printed %d", got, counted)
	}
	if !regexp.MustCompile(`(?m)^ \S+ +\| \d\d:\d\d +\| +\d+ \|`).Match(out) {
		t.Errorf("no category_counts row in the output:\n%s", out)
	}
	if strings.Contains(string(out), ":flowrun@") {
		t.Errorf("the output shows a password:\n%s", out)
	}
}
