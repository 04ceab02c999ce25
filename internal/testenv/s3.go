package testenv

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

// EnvS3Endpoint is the S3-compatible store's URL (scripts/services/s3.sh).
const EnvS3Endpoint = "FLOWRUN_S3_ENDPOINT"

// DefaultS3Endpoint matches what scripts/services/s3.sh starts.
const DefaultS3Endpoint = "http://127.0.0.1:8333"

// S3 returns the endpoint URL of a running S3-compatible store
// (FLOWRUN_S3_ENDPOINT, or the script's default), or skips/fails the test
// when its host:port does not answer.
func S3(t testing.TB) string {
	t.Helper()
	Integration(t)
	ep, src := S3Endpoint(os.LookupEnv)
	msg := ""
	u, err := url.Parse(ep)
	if err == nil && u.Host == "" {
		err = &url.Error{Op: "parse", URL: ep, Err: os.ErrInvalid}
	}
	if err == nil {
		err = probe(u.Host)
	}
	if err != nil {
		msg = err.Error()
	}
	if !require(t, "The S3 store", "s3", src, err == nil, msg) {
		return ""
	}
	return ep
}

// S3Endpoint reads the endpoint from the environment; src names where it
// came from.
func S3Endpoint(lookup func(string) (string, bool)) (ep, src string) {
	if v, ok := lookup(EnvS3Endpoint); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), EnvS3Endpoint
	}
	return DefaultS3Endpoint, "default"
}
