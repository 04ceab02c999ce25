package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flowrun/flowrun/dsl/types"
)

// parseIdent splits "schema.table" (or "table") into a pgx identifier.
// Quoting is not needed: names are taken literally, case included.
func parseIdent(s string) (pgx.Identifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%q: want table or schema.table", s)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("%q: empty name", s)
		}
	}
	return pgx.Identifier(parts), nil
}

// tableColumn is one column of an existing table.
type tableColumn struct {
	name      string
	sqlType   string // format_type, for messages
	typName   string // pg_type.typname, for the mapping
	notNull   bool
	hasDef    bool
	generated bool
}

// tableInfo is what the sink learns of its table at start.
type tableInfo struct {
	columns []tableColumn
	// uniques lists the column sets of the primary key and of every
	// unique index without predicate or expressions.
	uniques [][]string
}

func (t *tableInfo) column(name string) *tableColumn {
	for i := range t.columns {
		if t.columns[i].name == name {
			return &t.columns[i]
		}
	}
	return nil
}

// querier is what readTableConn needs of a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readTableConn returns nil, nil when the table does not exist.
func readTableConn(ctx context.Context, conn querier, table pgx.Identifier) (*tableInfo, error) {
	var oid *uint32
	if err := conn.QueryRow(ctx, "select to_regclass($1)::oid", table.Sanitize()).Scan(&oid); err != nil {
		return nil, err
	}
	if oid == nil {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `select a.attname, format_type(a.atttypid, a.atttypmod), t.typname,
		a.attnotnull, a.atthasdef or a.attidentity <> '', a.attgenerated <> ''
		from pg_attribute a join pg_type t on t.oid = a.atttypid
		where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attnum`, *oid)
	if err != nil {
		return nil, err
	}
	info := &tableInfo{}
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.sqlType, &c.typName, &c.notNull, &c.hasDef, &c.generated); err != nil {
			rows.Close()
			return nil, err
		}
		info.columns = append(info.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, `select array(select a.attname from unnest(i.indkey) k
		join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k)::text[]
		from pg_index i where i.indrelid = $1 and i.indisunique and i.indpred is null and i.indexprs is null`, *oid)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var cols []string
		if err := rows.Scan(&cols); err != nil {
			rows.Close()
			return nil, err
		}
		info.uniques = append(info.uniques, cols)
	}
	return info, rows.Err()
}

// check compares an existing table with the node's columns. Every problem
// is reported, one per line.
func (s *Sink) check(info *tableInfo) error {
	var problems []string
	table := s.table.Sanitize()
	written := map[string]bool{}
	for _, f := range s.cfg.Schema.Fields() {
		written[f.Name] = true
		m, _ := mapOf(f.Type)
		c := info.column(f.Name)
		switch {
		case c == nil:
			problems = append(problems, fmt.Sprintf("column %q (%s) is missing from table %s (add it: ALTER TABLE %s ADD COLUMN %s %s)",
				f.Name, types.Name(f.Type), table, table, pgx.Identifier{f.Name}.Sanitize(), m.create))
		case c.generated:
			problems = append(problems, fmt.Sprintf("column %q is generated in table %s and cannot be written", f.Name, table))
		case !contains(m.accept, c.typName):
			problems = append(problems, fmt.Sprintf("column %q is %s in the pipeline but %s in table %s, which cannot hold it (expected one of: %s)",
				f.Name, types.Name(f.Type), c.sqlType, table, strings.Join(m.accept, ", ")))
		}
	}
	for _, c := range info.columns {
		if !written[c.name] && c.notNull && !c.hasDef && !c.generated {
			problems = append(problems, fmt.Sprintf("table %s column %q is NOT NULL without a default, and the pipeline does not write it", table, c.name))
		}
	}
	if s.cfg.Mode == "upsert" {
		found := false
		for _, u := range info.uniques {
			if sameSet(u, s.cfg.Key) {
				found = true
				break
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("table %s has no primary key or unique index on exactly (%s), which an upsert needs (CREATE UNIQUE INDEX ON %s (%s))",
				table, strings.Join(s.cfg.Key, ", "), table, quoteList(s.cfg.Key)))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n  "))
	}
	return nil
}

// createSQL is the CREATE TABLE statement `create: true` runs.
func (s *Sink) createSQL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "create table if not exists %s (", s.table.Sanitize())
	for i, f := range s.cfg.Schema.Fields() {
		m, _ := mapOf(f.Type)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", pgx.Identifier{f.Name}.Sanitize(), m.create)
		if contains(s.cfg.Key, f.Name) {
			b.WriteString(" not null")
		}
	}
	if len(s.cfg.Key) > 0 {
		fmt.Fprintf(&b, ", primary key (%s)", quoteList(s.cfg.Key))
	}
	b.WriteString(")")
	return b.String()
}

// offsetsSQL creates the offsets table.
func offsetsSQL(t pgx.Identifier) string {
	return "create table if not exists " + t.Sanitize() + ` (
	pipeline text not null,
	sink text not null,
	topic text not null,
	partition integer not null,
	next_offset bigint not null,
	updated_at timestamptz not null default now(),
	primary key (pipeline, sink, topic, partition))`
}

// rejectedSQL creates the table of source ranges whose rows the sink
// refused (sent to its dead-letter output): a replay writes them again, so
// a dead letter lost in a crash after the commit is sent again.
func rejectedSQL(t pgx.Identifier) string {
	return "create table if not exists " + t.Sanitize() + ` (
	pipeline text not null,
	sink text not null,
	topic text not null,
	partition integer not null,
	first_offset bigint not null,
	last_offset bigint not null,
	primary key (pipeline, sink, topic, partition, first_offset, last_offset))`
}

// rejectedTable is the name of the table beside offsets t.
func rejectedTable(t pgx.Identifier) pgx.Identifier {
	out := append(pgx.Identifier(nil), t...)
	out[len(out)-1] += "_rejected"
	return out
}

func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a2, b2 := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a2)
	sort.Strings(b2)
	for i := range a2 {
		if a2[i] != b2[i] {
			return false
		}
	}
	return true
}

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact removes the password of connection string conn from s: the URL
// itself is replaced by its redacted form, and any password=… pair or
// user:password@ part is masked.
func Redact(s, conn string) string {
	if conn != "" {
		s = strings.ReplaceAll(s, conn, RedactURL(conn))
	}
	s = kvPassword.ReplaceAllString(s, "${1}xxxxx")
	return urlPassword.ReplaceAllString(s, "${1}:xxxxx@")
}

var urlPassword = regexp.MustCompile(`(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@`)

// RedactURL returns a connection string fit to show: a URL with its
// password replaced by xxxxx, a key=value string with password=xxxxx.
func RedactURL(conn string) string {
	if strings.Contains(conn, "://") {
		if u, err := url.Parse(conn); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			return u.String()
		}
		return urlPassword.ReplaceAllString(conn, "${1}:xxxxx@")
	}
	return kvPassword.ReplaceAllString(conn, "${1}xxxxx")
}

// redactErr wraps err so its message carries no password of conn, keeping
// the PostgreSQL error reachable with errors.As.
func redactErr(err error, conn string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := Redact(msg, conn); r != msg {
		return &redacted{msg: r, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// pgErr returns the PostgreSQL error inside err, or nil.
func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}
