// Package hbaseclient talks to HBase through the Thrift2 gateway HBase ships
// (org.apache.hadoop.hbase.thrift2.ThriftServer: plain socket, binary
// protocol). It hand-writes the handful of THBaseService calls flowrun needs
// (putMultiple, scanners, getMultiple, table admin) on top of
// github.com/apache/thrift's protocol types, instead of generated code, so no
// Thrift compiler version has to match the library. It also owns the value
// encoding flowrun uses for cells (see Encode and Decode) and the
// classification of gateway errors into retryable, per-row permanent and
// fatal ones.
//
// A Conn is one TCP connection and is not safe for concurrent use; the hbase
// sink opens one per request in flight.
package hbaseclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// Cell is one value of a row.
type Cell struct {
	Family, Qualifier, Value []byte
	Timestamp                int64 // 0: left to the server (on write)
}

// Put writes cells into one row.
type Put struct {
	Row   []byte
	Cells []Cell
}

// Row is what a read returns: the row key and its cells, sorted by family
// and qualifier as HBase returns them.
type Row struct {
	Key   []byte
	Cells []Cell
}

// IOError is the gateway's TIOError (or TIllegalArgument): HBase refused
// the request. Message carries the Java exception text.
type IOError struct {
	Message string
	Illegal bool // TIllegalArgument rather than TIOError
}

var javaPackage = regexp.MustCompile(`\b(?:[a-z][a-z0-9_]*\.)+([A-Z]\w*(?:Exception|Error))`)

// Error returns the gist of the message: its first line, Java package names
// and the table descriptor HBase appends dropped, at most 300 bytes (the
// whole text, with the Java stack trace, is in Message).
func (e *IOError) Error() string {
	msg := e.Message
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	msg = javaPackage.ReplaceAllString(msg, "$1")
	if i := strings.Index(msg, ", {TABLE_ATTRIBUTES"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if e.Illegal {
		return "hbase: illegal argument: " + msg
	}
	return "hbase: " + msg
}

// Class is what a caller should do about an error.
type Class int

const (
	// Retryable: the network, the gateway or a region was unavailable; the
	// same request may succeed later.
	Retryable Class = iota
	// Permanent: HBase refused the data itself (an unknown column family, a
	// cell too large, an empty row key). Retrying the same rows cannot help;
	// a batch split in halves finds the rows to dead-letter.
	Permanent
	// Fatal: the request can never succeed for any row (the table does not
	// exist, the gateway speaks another protocol): stop.
	Fatal
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return "fatal"
}

// permanentMarkers are Java exception names (DoNotRetryIOException and
// friends) whose presence in a TIOError means the rows themselves are bad.
var permanentMarkers = []string{
	"NoSuchColumnFamilyException",
	"FailedSanityCheckException",
	"IllegalArgumentException",
	"KeyValue size too large",
	"Row length",
	"row key is empty",
	"Row key is invalid",
	"WrongRowIOException",
}

var fatalMarkers = []string{
	"TableNotFoundException",
	"TableNotEnabledException",
	"AccessDeniedException",
}

// Classify sorts err into a Class. Transport failures (refused or reset
// connections, timeouts) are Retryable; TIOErrors are judged by the Java
// exception they carry.
func Classify(err error) Class {
	var io *IOError
	if errors.As(err, &io) {
		for _, m := range fatalMarkers {
			if strings.Contains(io.Message, m) {
				return Fatal
			}
		}
		for _, m := range permanentMarkers {
			if strings.Contains(io.Message, m) {
				return Permanent
			}
		}
		if io.Illegal {
			return Permanent
		}
		return Retryable
	}
	var app thrift.TApplicationException
	if errors.As(err, &app) {
		// The gateway answers an unchecked Java exception thrown while
		// processing the request (IllegalArgumentException "KeyValue size
		// too large", say) with INTERNAL_ERROR: the data caused it.
		if app.TypeId() == thrift.INTERNAL_ERROR {
			return Permanent
		}
		return Fatal
	}
	return Retryable
}

// Options tune a connection.
type Options struct {
	ConnectTimeout time.Duration // default 10s
	Timeout        time.Duration // per read/write on the socket; default 120s
}

// Conn is one connection to a Thrift2 gateway.
type Conn struct {
	addr  string
	trans thrift.TTransport
	proto thrift.TProtocol
	seq   int32
	dead  bool
	used  time.Time // end of the last call
}

// Dial connects to the Thrift2 gateway at addr (host:port).
func Dial(ctx context.Context, addr string, o Options) (*Conn, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 120 * time.Second
	}
	d := net.Dialer{Timeout: o.ConnectTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hbase: connect to Thrift2 gateway %s: %w", addr, err)
	}
	conf := &thrift.TConfiguration{ConnectTimeout: o.ConnectTimeout, SocketTimeout: o.Timeout,
		MaxMessageSize: 256 << 20}
	sock := thrift.NewTSocketFromConnConf(nc, conf)
	trans := thrift.NewTBufferedTransport(sock, 64<<10)
	return &Conn{addr: addr, trans: trans, proto: thrift.NewTBinaryProtocolConf(trans, conf), used: time.Now()}, nil
}

// Addr returns the gateway address.
func (c *Conn) Addr() string { return c.addr }

// Broken reports whether a transport error left the connection unusable;
// the caller should close it and dial again.
func (c *Conn) Broken() bool { return c.dead }

// Idle returns how long the connection has been unused. The gateway closes
// connections idle for hbase.thrift.server.socket.read.timeout (60 s by
// default), so a caller should dial again after MaxIdle.
func (c *Conn) Idle() time.Duration { return time.Since(c.used) }

// MaxIdle is how long a connection may sit unused before it is better
// dialled again than used (below the gateway's 60 s default).
const MaxIdle = 45 * time.Second

// Close closes the connection.
func (c *Conn) Close() error {
	if c == nil || c.trans == nil {
		return nil
	}
	return c.trans.Close()
}

// call writes one request (args writes the argument fields) and reads the
// reply: result reads field 0 (success); exceptions are turned into IOError.
func (c *Conn) call(ctx context.Context, method string, args func(p thrift.TProtocol) error,
	result func(p thrift.TProtocol) error) (err error) {
	if c.dead {
		return fmt.Errorf("hbase: connection to %s is broken", c.addr)
	}
	defer func() {
		c.used = time.Now()
		if err != nil {
			var io *IOError
			var app *appError
			if !errors.As(err, &io) && !errors.As(err, &app) {
				// Anything but a clean exception reply leaves the stream
				// in an unknown state.
				c.dead = true
			}
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		if s, ok := c.trans.(interface{ SetDeadline(time.Time) error }); ok {
			_ = s.SetDeadline(dl)
		}
	}
	p := c.proto
	c.seq++
	if err := p.WriteMessageBegin(ctx, method, thrift.CALL, c.seq); err != nil {
		return c.wrap(method, err)
	}
	if err := p.WriteStructBegin(ctx, method+"_args"); err != nil {
		return c.wrap(method, err)
	}
	if err := args(p); err != nil {
		return c.wrap(method, err)
	}
	if err := p.WriteFieldStop(ctx); err != nil {
		return c.wrap(method, err)
	}
	if err := p.WriteStructEnd(ctx); err != nil {
		return c.wrap(method, err)
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		return c.wrap(method, err)
	}
	if err := p.Flush(ctx); err != nil {
		return c.wrap(method, err)
	}
	_, typ, seq, err := p.ReadMessageBegin(ctx)
	if err != nil {
		return c.wrap(method, err)
	}
	if typ == thrift.EXCEPTION {
		ex := thrift.NewTApplicationException(thrift.UNKNOWN_APPLICATION_EXCEPTION, "")
		if r, ok := ex.(interface {
			Read(context.Context, thrift.TProtocol) error
		}); ok {
			if err := r.Read(ctx, p); err != nil {
				return c.wrap(method, err)
			}
		}
		if err := p.ReadMessageEnd(ctx); err != nil {
			return c.wrap(method, err)
		}
		// A complete exception reply leaves the stream in step.
		return &appError{method: method, ex: ex}
	}
	if seq != c.seq {
		return fmt.Errorf("hbase: %s: reply sequence %d, want %d", method, seq, c.seq)
	}
	var exc *IOError
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return c.wrap(method, err)
	}
	for {
		_, ft, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return c.wrap(method, err)
		}
		if ft == thrift.STOP {
			break
		}
		switch {
		case id == 0 && result != nil:
			err = result(p)
		case (id == 1 || id == 2) && ft == thrift.STRUCT:
			var msg string
			msg, err = readMessageStruct(ctx, p)
			exc = &IOError{Message: msg, Illegal: id == 2}
		default:
			err = p.Skip(ctx, ft)
		}
		if err != nil {
			return c.wrap(method, err)
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return c.wrap(method, err)
		}
	}
	if err := p.ReadStructEnd(ctx); err != nil {
		return c.wrap(method, err)
	}
	if err := p.ReadMessageEnd(ctx); err != nil {
		return c.wrap(method, err)
	}
	if exc != nil {
		return exc
	}
	return nil
}

// appError is an exception reply of the gateway (TApplicationException).
type appError struct {
	method string
	ex     thrift.TApplicationException
}

func (e *appError) Error() string {
	return fmt.Sprintf("hbase: %s: gateway error: %s (the gateway's log has the Java exception)", e.method, e.ex.Error())
}

func (e *appError) Unwrap() error { return e.ex }

func (c *Conn) wrap(method string, err error) error {
	c.dead = true
	return fmt.Errorf("hbase: %s via %s: %w", method, c.addr, err)
}

// readMessageStruct reads TIOError / TIllegalArgument {1: optional string message}.
func readMessageStruct(ctx context.Context, p thrift.TProtocol) (string, error) {
	var msg string
	err := readStruct(ctx, p, func(id int16, ft thrift.TType) (bool, error) {
		if id == 1 && ft == thrift.STRING {
			s, err := p.ReadString(ctx)
			msg = s
			return true, err
		}
		return false, nil
	})
	return msg, err
}

// readStruct reads a struct, handing each field to f; f returns false for
// fields it did not consume (they are skipped).
func readStruct(ctx context.Context, p thrift.TProtocol, f func(id int16, ft thrift.TType) (bool, error)) error {
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return err
	}
	for {
		_, ft, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if ft == thrift.STOP {
			break
		}
		ok, err := f(id, ft)
		if err != nil {
			return err
		}
		if !ok {
			if err := p.Skip(ctx, ft); err != nil {
				return err
			}
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return err
		}
	}
	return p.ReadStructEnd(ctx)
}

// field writes a field header; end writes its end.
func field(ctx context.Context, p thrift.TProtocol, t thrift.TType, id int16) error {
	return p.WriteFieldBegin(ctx, "", t, id)
}

func binaryField(ctx context.Context, p thrift.TProtocol, id int16, b []byte) error {
	if err := field(ctx, p, thrift.STRING, id); err != nil {
		return err
	}
	if b == nil {
		b = []byte{}
	}
	if err := p.WriteBinary(ctx, b); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

func i32Field(ctx context.Context, p thrift.TProtocol, id int16, v int32) error {
	if err := field(ctx, p, thrift.I32, id); err != nil {
		return err
	}
	if err := p.WriteI32(ctx, v); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

func boolField(ctx context.Context, p thrift.TProtocol, id int16, v bool) error {
	if err := field(ctx, p, thrift.BOOL, id); err != nil {
		return err
	}
	if err := p.WriteBool(ctx, v); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

func structEnd(ctx context.Context, p thrift.TProtocol) error {
	if err := p.WriteFieldStop(ctx); err != nil {
		return err
	}
	return p.WriteStructEnd(ctx)
}

// writeTableName writes TTableName {1: ns, 2: qualifier} for "ns:table" or "table".
func writeTableName(ctx context.Context, p thrift.TProtocol, table string) error {
	ns, q := SplitTable(table)
	if err := p.WriteStructBegin(ctx, "TTableName"); err != nil {
		return err
	}
	if ns != "" {
		if err := binaryField(ctx, p, 1, []byte(ns)); err != nil {
			return err
		}
	}
	if err := binaryField(ctx, p, 2, []byte(q)); err != nil {
		return err
	}
	return structEnd(ctx, p)
}

// SplitTable splits "ns:table" into namespace and qualifier ("" namespace
// for the default one).
func SplitTable(table string) (ns, qualifier string) {
	if i := strings.IndexByte(table, ':'); i >= 0 {
		return table[:i], table[i+1:]
	}
	return "", table
}

func writeCells(ctx context.Context, p thrift.TProtocol, id int16, cells []Cell) error {
	if err := field(ctx, p, thrift.LIST, id); err != nil {
		return err
	}
	if err := p.WriteListBegin(ctx, thrift.STRUCT, len(cells)); err != nil {
		return err
	}
	for _, c := range cells {
		if err := p.WriteStructBegin(ctx, "TColumnValue"); err != nil {
			return err
		}
		if err := binaryField(ctx, p, 1, c.Family); err != nil {
			return err
		}
		if err := binaryField(ctx, p, 2, c.Qualifier); err != nil {
			return err
		}
		if err := binaryField(ctx, p, 3, c.Value); err != nil {
			return err
		}
		if c.Timestamp != 0 {
			if err := field(ctx, p, thrift.I64, 4); err != nil {
				return err
			}
			if err := p.WriteI64(ctx, c.Timestamp); err != nil {
				return err
			}
			if err := p.WriteFieldEnd(ctx); err != nil {
				return err
			}
		}
		if err := structEnd(ctx, p); err != nil {
			return err
		}
	}
	if err := p.WriteListEnd(ctx); err != nil {
		return err
	}
	return p.WriteFieldEnd(ctx)
}

// PutMultiple writes puts to table in one request. HBase applies the puts
// of one request independently: on an error some of them may be stored
// (puts are idempotent, so the caller retries or splits the same rows).
func (c *Conn) PutMultiple(ctx context.Context, table string, puts []Put) error {
	return c.call(ctx, "putMultiple", func(p thrift.TProtocol) error {
		if err := binaryField(ctx, p, 1, []byte(table)); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.LIST, 2); err != nil {
			return err
		}
		if err := p.WriteListBegin(ctx, thrift.STRUCT, len(puts)); err != nil {
			return err
		}
		for i := range puts {
			if err := p.WriteStructBegin(ctx, "TPut"); err != nil {
				return err
			}
			if err := binaryField(ctx, p, 1, puts[i].Row); err != nil {
				return err
			}
			if err := writeCells(ctx, p, 2, puts[i].Cells); err != nil {
				return err
			}
			if err := structEnd(ctx, p); err != nil {
				return err
			}
		}
		if err := p.WriteListEnd(ctx); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, nil)
}

// TableExists reports whether table ("ns:name" or "name") exists.
func (c *Conn) TableExists(ctx context.Context, table string) (bool, error) {
	var ok bool
	err := c.call(ctx, "tableExists", func(p thrift.TProtocol) error {
		if err := field(ctx, p, thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := writeTableName(ctx, p, table); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, func(p thrift.TProtocol) error {
		v, err := p.ReadBool(ctx)
		ok = v
		return err
	})
	return ok, err
}

// CreateTable creates table with the given column families (one version
// kept per cell).
func (c *Conn) CreateTable(ctx context.Context, table string, families []string) error {
	return c.call(ctx, "createTable", func(p thrift.TProtocol) error {
		if err := field(ctx, p, thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := p.WriteStructBegin(ctx, "TTableDescriptor"); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := writeTableName(ctx, p, table); err != nil {
			return err
		}
		if err := p.WriteFieldEnd(ctx); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.LIST, 2); err != nil {
			return err
		}
		if err := p.WriteListBegin(ctx, thrift.STRUCT, len(families)); err != nil {
			return err
		}
		for _, f := range families {
			if err := p.WriteStructBegin(ctx, "TColumnFamilyDescriptor"); err != nil {
				return err
			}
			if err := binaryField(ctx, p, 1, []byte(f)); err != nil {
				return err
			}
			if err := i32Field(ctx, p, 10, 1); err != nil { // maxVersions
				return err
			}
			if err := structEnd(ctx, p); err != nil {
				return err
			}
		}
		if err := p.WriteListEnd(ctx); err != nil {
			return err
		}
		if err := p.WriteFieldEnd(ctx); err != nil {
			return err
		}
		if err := structEnd(ctx, p); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, nil)
}

func (c *Conn) tableCall(ctx context.Context, method, table string) error {
	return c.call(ctx, method, func(p thrift.TProtocol) error {
		if err := field(ctx, p, thrift.STRUCT, 1); err != nil {
			return err
		}
		if err := writeTableName(ctx, p, table); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, nil)
}

// DropTable disables and deletes table if it exists (for tests and tools).
func (c *Conn) DropTable(ctx context.Context, table string) error {
	ok, err := c.TableExists(ctx, table)
	if err != nil || !ok {
		return err
	}
	if err := c.tableCall(ctx, "disableTable", table); err != nil && !strings.Contains(err.Error(), "TableNotEnabledException") {
		return err
	}
	return c.tableCall(ctx, "deleteTable", table)
}

// Tables lists the user tables whose name matches the Java regular
// expression regex ("ns:name" outside the default namespace), for tools
// that clean up after themselves.
func (c *Conn) Tables(ctx context.Context, regex string) ([]string, error) {
	var names []string
	err := c.call(ctx, "getTableNamesByPattern", func(p thrift.TProtocol) error {
		if err := binaryField(ctx, p, 1, []byte(regex)); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.BOOL, 2); err != nil { // includeSysTables
			return err
		}
		if err := p.WriteBool(ctx, false); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, func(p thrift.TProtocol) error {
		_, n, err := p.ReadListBegin(ctx)
		if err != nil {
			return err
		}
		for range n {
			var ns, q []byte
			err := readStruct(ctx, p, func(id int16, ft thrift.TType) (bool, error) {
				var err error
				switch {
				case id == 1 && ft == thrift.STRING:
					ns, err = p.ReadBinary(ctx)
				case id == 2 && ft == thrift.STRING:
					q, err = p.ReadBinary(ctx)
				default:
					return false, nil
				}
				return true, err
			})
			if err != nil {
				return err
			}
			if len(ns) > 0 && string(ns) != "default" {
				names = append(names, string(ns)+":"+string(q))
			} else {
				names = append(names, string(q))
			}
		}
		return p.ReadListEnd(ctx)
	})
	return names, err
}

// Scan reads rows of table from start (inclusive) to stop (exclusive; nil
// = to the end), at most limit rows (0 = all), fetching batch rows per
// request.
func (c *Conn) Scan(ctx context.Context, table string, start, stop []byte, limit int) ([]Row, error) {
	const batch = 1000
	var id int32
	err := c.call(ctx, "openScanner", func(p thrift.TProtocol) error {
		if err := binaryField(ctx, p, 1, []byte(table)); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.STRUCT, 2); err != nil {
			return err
		}
		if err := p.WriteStructBegin(ctx, "TScan"); err != nil {
			return err
		}
		if len(start) > 0 {
			if err := binaryField(ctx, p, 1, start); err != nil {
				return err
			}
		}
		if len(stop) > 0 {
			if err := binaryField(ctx, p, 2, stop); err != nil {
				return err
			}
		}
		if err := i32Field(ctx, p, 4, batch); err != nil { // caching
			return err
		}
		if err := structEnd(ctx, p); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, func(p thrift.TProtocol) error {
		v, err := p.ReadI32(ctx)
		id = v
		return err
	})
	if err != nil {
		return nil, err
	}
	var rows []Row
	for limit <= 0 || len(rows) < limit {
		n := batch
		if limit > 0 && limit-len(rows) < n {
			n = limit - len(rows)
		}
		var got []Row
		err := c.call(ctx, "getScannerRows", func(p thrift.TProtocol) error {
			if err := i32Field(ctx, p, 1, id); err != nil {
				return err
			}
			return i32Field(ctx, p, 2, int32(n))
		}, func(p thrift.TProtocol) error {
			var err error
			got, err = readResults(ctx, p)
			return err
		})
		if err != nil {
			return rows, err
		}
		rows = append(rows, got...)
		if len(got) < n {
			break
		}
	}
	err = c.call(ctx, "closeScanner", func(p thrift.TProtocol) error { return i32Field(ctx, p, 1, id) }, nil)
	return rows, err
}

// Get reads the given rows of table; a missing row comes back with no cells.
func (c *Conn) Get(ctx context.Context, table string, keys [][]byte) ([]Row, error) {
	var rows []Row
	err := c.call(ctx, "getMultiple", func(p thrift.TProtocol) error {
		if err := binaryField(ctx, p, 1, []byte(table)); err != nil {
			return err
		}
		if err := field(ctx, p, thrift.LIST, 2); err != nil {
			return err
		}
		if err := p.WriteListBegin(ctx, thrift.STRUCT, len(keys)); err != nil {
			return err
		}
		for _, k := range keys {
			if err := p.WriteStructBegin(ctx, "TGet"); err != nil {
				return err
			}
			if err := binaryField(ctx, p, 1, k); err != nil {
				return err
			}
			if err := structEnd(ctx, p); err != nil {
				return err
			}
		}
		if err := p.WriteListEnd(ctx); err != nil {
			return err
		}
		return p.WriteFieldEnd(ctx)
	}, func(p thrift.TProtocol) error {
		var err error
		rows, err = readResults(ctx, p)
		return err
	})
	return rows, err
}

// readResults reads list<TResult>.
func readResults(ctx context.Context, p thrift.TProtocol) ([]Row, error) {
	_, n, err := p.ReadListBegin(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, 0, n)
	for range n {
		var r Row
		err := readStruct(ctx, p, func(id int16, ft thrift.TType) (bool, error) {
			switch {
			case id == 1 && ft == thrift.STRING:
				b, err := p.ReadBinary(ctx)
				r.Key = b
				return true, err
			case id == 2 && ft == thrift.LIST:
				_, m, err := p.ReadListBegin(ctx)
				if err != nil {
					return true, err
				}
				r.Cells = make([]Cell, 0, m)
				for range m {
					var c Cell
					err := readStruct(ctx, p, func(id int16, ft thrift.TType) (bool, error) {
						var err error
						switch {
						case id == 1 && ft == thrift.STRING:
							c.Family, err = p.ReadBinary(ctx)
						case id == 2 && ft == thrift.STRING:
							c.Qualifier, err = p.ReadBinary(ctx)
						case id == 3 && ft == thrift.STRING:
							c.Value, err = p.ReadBinary(ctx)
						case id == 4 && ft == thrift.I64:
							c.Timestamp, err = p.ReadI64(ctx)
						default:
							return false, nil
						}
						return true, err
					})
					if err != nil {
						return true, err
					}
					r.Cells = append(r.Cells, c)
				}
				return true, p.ReadListEnd(ctx)
			}
			return false, nil
		})
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, p.ReadListEnd(ctx)
}
