package metrics_test

import (
	"fmt"
	"net/http"
	"time"
)

var httptestClient = &http.Client{Timeout: 5 * time.Second}

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }
