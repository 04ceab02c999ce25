package httpsrc

import (
	"bytes"
	"fmt"
)

// splitArray calls fn with each element of the JSON array b, in order, and
// returns how many there were. It finds element boundaries only (strings and
// nesting); fn's decoder checks each element fully. Errors from fn stop it.
func splitArray(b []byte, fn func(i int, elem []byte) error) (int, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return 0, &postError{msg: "expected a JSON array of posts"}
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return 0, trailing(b, i+1, 0)
	}
	for n := 0; ; n++ {
		end, err := scanValue(b, i)
		if err != nil {
			return n, &postError{index: n, msg: fmt.Sprintf("invalid JSON at offset %d: %v", end, err)}
		}
		if err := fn(n, b[i:end]); err != nil {
			return n, err
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return n + 1, &postError{index: n, msg: fmt.Sprintf("invalid JSON at offset %d: unexpected end of input, expected ',' or ']'", i)}
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return n + 1, trailing(b, i+1, n)
		default:
			return n + 1, &postError{index: n, msg: fmt.Sprintf("invalid JSON at offset %d: unexpected %q after post, expected ',' or ']'", i, b[i])}
		}
	}
}

func trailing(b []byte, i, n int) error {
	if j := skipWS(b, i); j != len(b) {
		return &postError{index: n, msg: fmt.Sprintf("invalid JSON at offset %d: unexpected text after the array", j)}
	}
	return nil
}

// scanValue returns the end of the JSON value starting at i, tracking
// strings and bracket depth only.
func scanValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, fmt.Errorf("unexpected end of input, expected a post")
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			k := j + 1
			for ; k < len(b); k++ {
				if b[k] == '\\' {
					k++
					continue
				}
				if b[k] == '"' {
					break
				}
			}
			if k >= len(b) {
				return len(b), fmt.Errorf("unterminated string")
			}
			j = k
			if depth == 0 {
				return j + 1, nil
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, nil // end of a scalar inside the array
			}
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case ',', ' ', '\t', '\r', '\n':
			if depth == 0 {
				if j == i {
					return j, fmt.Errorf("unexpected %q, expected a post", c)
				}
				return j, nil
			}
		}
	}
	if depth > 0 {
		return len(b), fmt.Errorf("unexpected end of input inside a post")
	}
	return len(b), nil
}

// splitLines calls fn with each non-blank line of b (NDJSON).
func splitLines(b []byte, fn func(i int, line []byte) error) (int, error) {
	n := 0
	for len(b) > 0 {
		var line []byte
		if k := bytes.IndexByte(b, '\n'); k >= 0 {
			line, b = b[:k], b[k+1:]
		} else {
			line, b = b, nil
		}
		if skipWS(line, 0) == len(line) {
			continue
		}
		if err := fn(n, line); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// isOneValue reports whether b holds exactly one JSON object (a batch of one
// post, perhaps pretty-printed over several lines).
func isOneValue(b []byte) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, err := scanValue(b, i)
	return err == nil && skipWS(b, end) == len(b)
}
