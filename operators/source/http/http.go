// Package httpsrc is the "http" source: the ingest API. Producers POST posts
// as JSON, one per request or many per request (a JSON array or NDJSON), and
// get an answer only once every sink has durably written them: 200 with
// {"accepted": N}, or 503 when the pipeline failed them (a Kafka outage, a
// stop). Bad posts get 400 naming the post and field, posts a sink can never
// store 422; the API never answers 200 for data it did not store.
//
// Single-post requests are coalesced: their rows go into one shared decoder
// and are emitted together every few milliseconds or at BatchRows rows, under
// one ack. Batch requests are decoded on their own (all or nothing) and
// joined to the same batch. The ack answers every request in the batch,
// except when a sink rejects rows it can never store (op.RejectedRows): then
// only the requests of those rows fail and the others' rows are sent again
// (settle).
//
// Bodies are read before a request takes an in-flight slot, into pooled
// buffers that grow as bytes arrive and are charged to a budget of body
// bytes (body.go), so cheap or slow connections bound neither memory nor
// the slots of real clients.
//
// The folder is operators/source/http; the package is httpsrc so that it does
// not shadow net/http.
package httpsrc

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flowrun/flowrun/dsl/ast"
	"github.com/flowrun/flowrun/dsl/spec"
	"github.com/flowrun/flowrun/dsl/types"
	"github.com/flowrun/flowrun/dsl/validate"
	"github.com/flowrun/flowrun/runtime/op"
)

// Defaults of the configuration.
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultPath        = "/v1/posts"
	DefaultBatchPath   = "/v1/posts/batch"
	DefaultStamp       = "ingested_at"
	DefaultMaxBody     = 1 << 20
	DefaultMaxInflight = 1024
	// DefaultMaxBodyMemory bounds the request bodies held at once.
	DefaultMaxBodyMemory = 64 << 20
	DefaultAckTimeout    = 30 * time.Second
	DefaultReadTimeout   = 10 * time.Second
	// DefaultLinger is how long a coalesced batch waits for more rows.
	DefaultLinger = 5 * time.Millisecond
)

// Plugin is the registered operator.
var Plugin = &op.Plugin{
	Section: ast.Sources,
	Spec: spec.Spec{
		Name:    "http",
		Summary: "An HTTP ingest API that answers only after the posts are stored.",
		Doc: `Listens for posts: POST one JSON object to 'path', or many to 'batch_path'
as a JSON array, one object per line (NDJSON), or a single (possibly
pretty-printed) object. The Content-Type must be application/json or
application/x-ndjson, in UTF-8 (no charset, or charset=utf-8). Each post is
decoded against 'schema'; unknown fields are ignored; integer fields take only
whole numbers (1.5 and 1e-999 are errors, 3.0 is 3), and a string field does
not take an object or array. The response is sent once every sink has
durably written the posts: 200 {"accepted": N}. A batch is all or nothing: if
any post is invalid the whole request is rejected with 400 {"error", "field",
"index"} naming the first bad post (index counts from 0) and nothing of it is
emitted. Posts of different requests travel together, but each request is
answered from the fate of its own posts: when a sink can never store a post
(a Kafka message over max_message_bytes), its request gets 422 {"error",
"index"} with the reason and nothing of that request is stored, while the
other requests' posts are sent again and answered 200. 503 {"error": ...}
means the pipeline failed the posts (a Kafka outage, a stop) or did not
confirm within ack_timeout: retry. Whether a 503 can follow a partial write
depends on the sink: a kafka sink with 'transactional: true' aborts the
whole batch, so none of the request's posts is visible to read_committed
consumers and a retry stores each once; without it, some posts of a failed
request may already be stored and the retry writes them again. A 503 after
ack_timeout ("they may still be written") may be followed by the posts
being stored, unless the sink gives up first: the transactional kafka
sink's transaction_deadline (20s by default, below ack_timeout's 30s)
fails a transaction that is not stored in time and never commits it.
Other answers: 413 body larger than max_body, 415 missing or unsupported
Content-Type or charset, 405 wrong method, 408 body not received within
read_timeout, 429 (Retry-After: 1) when max_inflight requests already wait
for their acks, 503 (Retry-After: 1) when request bodies being read fill
max_body_memory for longer than read_timeout. A body is read before its
request counts against max_inflight, into buffers that grow as bytes arrive,
so slow or stalled senders cost little memory and never keep other clients
out. GET /healthz is 200 while the server is up; GET /readyz is 200 while
the source accepts posts and 503 when it is saturated or stopping. Each row
gets the 'stamp' timestamp column (the time the request arrived) unless the
post carries that field itself.`,
		Example: `sources:
  posts:
    http: {listen: "0.0.0.0:8080", schema: pin, max_inflight: 256}`,
		Config: spec.Obj(
			spec.F("listen", spec.String, "Address to listen on, host:port.").Def(DefaultListen),
			spec.F("path", spec.String, "Path that takes one post per request.").Def(DefaultPath),
			spec.F("batch_path", spec.String, "Path that takes many posts per request (JSON array or NDJSON).").Def(DefaultBatchPath),
			spec.F("schema", spec.SchemaRef, "Schema of a post.").Req(),
			spec.F("stamp", spec.String, "Timestamp column set to the arrival time when the post does not carry it; appended to the schema if absent.").Def(DefaultStamp),
			spec.F("max_body", spec.Size, "Largest request body; larger ones get 413.").Def(int64(DefaultMaxBody)),
			spec.F("max_body_memory", spec.Size, "Bytes of request bodies held in memory at once, over all connections (plus an eighth kept for the first 16 KiB of new requests, so small posts get in while large bodies fill it); when spent, requests wait (a new one within read_timeout, a growing one 1s), then get 503.").Def(int64(DefaultMaxBodyMemory)),
			spec.F("max_inflight", spec.Int, "Requests that may wait for their acks at once; more get 429.").Def(int64(DefaultMaxInflight)),
			spec.F("ack_timeout", spec.Duration, "How long a request waits for its posts to be stored before 503.").Def(DefaultAckTimeout),
			spec.F("read_timeout", spec.Duration, "Longest time to read one request (headers and body), against slow clients.").Def(DefaultReadTimeout),
		),
	},
	Prepare: prepare,
	Flow: func(cfg *spec.Value, _ bool) validate.Flow {
		// An API has no end, not even with --once.
		return validate.Flow{Unbounded: true, Commits: "requests would never be answered, only time out with 503",
			AckTimeout: cfg.Duration("ack_timeout")}
	},
}

func init() { op.MustRegister(Plugin) }

func prepare(c *validate.Check) (*arrow.Schema, op.Constructor) {
	v := c.Config
	cfg := Config{
		Listen:        v.String("listen"),
		Path:          v.String("path"),
		BatchPath:     v.String("batch_path"),
		Stamp:         v.String("stamp"),
		MaxBody:       v.Int64("max_body"),
		MaxBodyMemory: v.Int64("max_body_memory"),
		MaxInflight:   int(v.Int64("max_inflight")),
		AckTimeout:    v.Duration("ack_timeout"),
		ReadTimeout:   v.Duration("read_timeout"),
	}
	if c.Schema != nil {
		cfg.Schema = c.Schema(v.Get("schema"))
	}
	for _, name := range []string{"path", "batch_path"} {
		if p := v.String(name); len(p) == 0 || p[0] != '/' {
			c.Errorf(v.PosOf(name), "'%s' must start with '/', got %q", name, p)
		}
	}
	if cfg.Path == cfg.BatchPath {
		c.Errorf(v.PosOf("batch_path"), "'batch_path' must differ from 'path' (%s)", cfg.Path)
	}
	if cfg.MaxBody <= 0 {
		c.Errorf(v.PosOf("max_body"), "'max_body' must be positive")
	}
	if cfg.MaxBodyMemory < cfg.MaxBody {
		c.Errorf(v.PosOf("max_body_memory"), "'max_body_memory' (%d) must be at least 'max_body' (%d)", cfg.MaxBodyMemory, cfg.MaxBody)
	}
	if cfg.MaxInflight <= 0 {
		c.Errorf(v.PosOf("max_inflight"), "'max_inflight' must be positive")
	}
	if cfg.AckTimeout <= 0 {
		c.Errorf(v.PosOf("ack_timeout"), "'ack_timeout' must be positive")
	}
	if cfg.ReadTimeout <= 0 {
		c.Errorf(v.PosOf("read_timeout"), "'read_timeout' must be positive")
	}
	if cfg.Schema == nil {
		return nil, nil // reported by schema resolution
	}
	out, err := OutputSchema(cfg.Schema, cfg.Stamp)
	if err != nil {
		c.Errorf(v.PosOf("stamp"), "%v", err)
		return nil, nil
	}
	return out, func(r op.Resources) (any, error) { return New(cfg, r) }
}

// OutputSchema is schema with a nullable timestamp column named stamp
// appended, or schema itself when it already has that column as a
// timestamp. An empty stamp adds nothing.
func OutputSchema(schema *arrow.Schema, stamp string) (*arrow.Schema, error) {
	if stamp == "" {
		return schema, nil
	}
	if idx := schema.FieldIndices(stamp); len(idx) > 0 {
		f := schema.Field(idx[0])
		if f.Type.ID() != arrow.TIMESTAMP {
			return nil, fmt.Errorf("stamp column '%s' is declared in the schema as %s; it must be a timestamp", stamp, types.Name(f.Type))
		}
		return schema, nil
	}
	fields := append(schema.Fields(), arrow.Field{Name: stamp, Type: types.Timestamp, Nullable: true})
	md := schema.Metadata()
	return arrow.NewSchema(fields, &md), nil
}
