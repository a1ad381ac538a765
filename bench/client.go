package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// newHTTPClient returns a client tuned so the connection layer does not
// limit the measurement: keep-alive on, at least one idle connection kept
// per possible in-flight request per host (so no request ever pays a new
// TCP handshake in steady state), HTTP/1.1 only, no transparent gzip, and
// no redirects. Whether this client is the limit is itself measured: the
// baseline scenario drives a trivial server with this same client, so its
// throughput is the ceiling of client plus loopback on the machine.
func newHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:           loopbackDialer(),
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   concurrency + 16,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: 0,
		ResponseHeaderTimeout: timeout,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// response is what scenarios judge: the status and (a bounded copy of) the body.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxBody = 1 << 20

// do sends req and reads the whole body (so the connection is reused).
// keepBody controls whether the body is copied into the response; hot-path
// scenarios that only need the status pass false and allocate nothing for it.
func do(c *http.Client, req *http.Request, keepBody bool) (response, error) {
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{Status: resp.StatusCode, Header: resp.Header}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = io.Copy(buf, io.LimitReader(resp.Body, maxBody))
	if keepBody {
		r.Body = bytes.Clone(buf.Bytes())
	}
	bodyPool.Put(buf)
	if err != nil {
		return r, err
	}
	return r, nil
}

// errorClass names a failed request for "errors by status": the HTTP status
// code, or a short transport class.
func errorClass(status int, err error) string {
	if err == nil {
		return strconv.Itoa(status)
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout"),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "conn-refused"
	case strings.Contains(err.Error(), "reset"), strings.Contains(err.Error(), "EOF"),
		strings.Contains(err.Error(), "broken pipe"):
		return "conn-reset"
	default:
		return "transport"
	}
}
