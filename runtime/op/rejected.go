package op

import (
	"fmt"
	"strings"
)

// RejectedRows is the error a sink finishes a batch's ack with when some of
// its rows can never be stored (a permanent fault of the record itself, such
// as a message larger than the broker accepts) and the sink stored none of
// the batch: it checked every row before writing any. Retrying the same rows
// fails the same way, so a source that can tell its rows apart (the http
// source, whose batches join many requests) answers the requests those rows
// came from with a client error and sends the other rows again; any other
// source treats it as a failed ack.
//
// Index holds the rejected rows of the batch the sink received, ascending,
// Reasons the reason of each; Rows is that batch's length, so a source can
// see whether a transform changed the rows on the way (then the indexes are
// not its own).
type RejectedRows struct {
	Rows    int
	Index   []int
	Reasons []string
}

func (e *RejectedRows) Error() string {
	if len(e.Index) == 0 {
		return "rows rejected"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d rows can never be stored (nothing of the batch was written); row %d: %s", len(e.Index), e.Rows, e.Index[0], e.Reasons[0])
	return b.String()
}

// StoredRows is implemented by nodes that learn exactly how many of their
// rows were stored: a sink that counts what its store acknowledged (the
// kafka sink: the messages the broker acknowledged), a source that sends
// rows again (the http source: the posts whose acks succeeded, each once).
// Once the node is closed, the runtime reports that count as its rows out,
// instead of the rows it wrote or emitted, so a run's summary says what was
// really stored.
type StoredRows interface {
	StoredRows() int64
}

// FailedRows is the error a sink finishes a batch's ack with when some of
// its rows could not be stored (after the sink's retries) while the others
// were: Index holds the failed rows of the batch the sink received,
// ascending, Rows that batch's length, Err the first failure. Unlike
// RejectedRows the failure may pass (an outage), so the rows may be sent
// again. A source that can tell its rows apart answers for those rows alone
// (the http source: 503 for their requests, 200 for requests whose rows
// were all stored); any other source treats it as a failed ack.
type FailedRows struct {
	Rows  int
	Index []int
	Err   error
}

func (e *FailedRows) Error() string {
	return fmt.Sprintf("%d of %d rows not stored: %v", len(e.Index), e.Rows, e.Err)
}

func (e *FailedRows) Unwrap() error { return e.Err }
