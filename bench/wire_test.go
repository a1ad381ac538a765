package bench

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponseFraming(t *testing.T) {
	const next = "HTTP/1.1 299 Next\r\nContent-Length: 0\r\n\r\n"
	cases := []struct {
		name, raw string
		status    int
		body      string
		keepAlive bool
		wantErr   bool
		errNext   bool // the connection cannot be read further
	}{
		{name: "length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", status: 200, body: "hello", keepAlive: true},
		{name: "lowercase names", raw: "HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\nno", status: 401, body: "no", keepAlive: true},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n", status: 200, body: "abcde", keepAlive: true},
		{name: "connection close", raw: "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", status: 503, body: "x"},
		{name: "http/1.0 default close", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x"},
		{name: "http/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", keepAlive: true},
		{name: "interim answer skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", status: 201, body: "ok", keepAlive: true},
		{name: "no content", raw: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, keepAlive: true},
		{name: "until EOF", raw: "HTTP/1.1 200 OK\r\n\r\nrest of it", status: 200, body: "rest of it", errNext: true},
		{name: "bad status line", raw: "HTTP/2 200\r\n\r\n", wantErr: true},
		{name: "bad length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "bad header", raw: "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", wantErr: true},
		{name: "truncated body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", wantErr: true},
		{name: "bad chunk", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, keep := range []bool{true, false} {
				raw := tc.raw
				if !tc.wantErr && !tc.errNext {
					raw += next
				}
				br := bufio.NewReader(strings.NewReader(raw))
				r, keepAlive, started, err := readResponse(br, keep)
				if tc.wantErr {
					if err == nil {
						t.Fatalf("keep=%v: no error for %q", keep, tc.raw)
					}
					return
				}
				if err != nil || !started {
					t.Fatalf("keep=%v: err %v started %v", keep, err, started)
				}
				wantBody := tc.body
				if !keep {
					wantBody = ""
				}
				if r.Status != tc.status || string(r.Body) != wantBody || keepAlive != tc.keepAlive {
					t.Fatalf("keep=%v: got %d %q keepAlive=%v, want %d %q %v", keep, r.Status, r.Body, keepAlive, tc.status, wantBody, tc.keepAlive)
				}
				if tc.errNext {
					continue
				}
				// The framing ended exactly where the answer did.
				if r2, _, _, err := readResponse(br, keep); err != nil || r2.Status != 299 {
					t.Fatalf("keep=%v: next answer: %d %v", keep, r2.Status, err)
				}
			}
		})
	}
}

func TestReadResponseEOFBeforeAnswer(t *testing.T) {
	_, _, started, err := readResponse(bufio.NewReader(strings.NewReader("")), false)
	if !errors.Is(err, io.EOF) || started {
		t.Fatalf("err %v started %v", err, started)
	}
	_, _, started, err = readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 2")), false)
	if err == nil || !started {
		t.Fatalf("partial status line: err %v started %v", err, started)
	}
}

func TestAppendRequestIsValidHTTP(t *testing.T) {
	n := newNode("http://127.0.0.1:9/prefix/")
	c := newCreds("cl id", "s3cr:t")
	for _, rq := range []request{validateRequest(n, "at_x"), revokeRequest(n, c, "at y")} {
		raw := appendRequest(nil, &rq)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(raw))))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		body, _ := io.ReadAll(req.Body)
		if req.Method != rq.method || req.Host != "127.0.0.1:9" || "http://"+req.Host+req.URL.Path != rq.url ||
			req.Header.Get("Authorization") != rq.authScheme+rq.auth || string(body) != rq.form {
			t.Fatalf("%q parsed as %s %s host %s auth %q body %q", raw, req.Method, req.URL, req.Host, req.Header.Get("Authorization"), body)
		}
		if rq.method == http.MethodPost && req.Header.Get("Content-Type") != formType {
			t.Fatalf("content type %q", req.Header.Get("Content-Type"))
		}
	}
}

func TestWireClientReusesOneConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
		}
		_, _ = io.WriteString(w, strings.Repeat("b", 5000)) // chunked past the buffer
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newWireClient(context.Background(), 5*time.Second)
	defer c.close()
	n := newNode(srv.URL)
	for i := 0; i < 20; i++ {
		req := validateRequest(n, "tok")
		r, err := c.do(&req, true)
		if err != nil || r.Status != 200 || len(r.Body) != 5000 {
			t.Fatalf("request %d: %d %d bytes %v", i, r.Status, len(r.Body), err)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1", got)
	}
}

// oneShotServer answers one request per connection and then closes it
// without saying so, like a server whose idle timeout fired.
func oneShotServer(t *testing.T) (url string, requests *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	requests = new(atomic.Int64)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
					return
				}
				requests.Add(1)
				_, _ = io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			}()
		}
	}()
	return "http://" + ln.Addr().String(), requests
}

func TestWireClientRetriesOnlyGETOnClosedConnection(t *testing.T) {
	url, requests := oneShotServer(t)
	c := newWireClient(context.Background(), 5*time.Second)
	defer c.close()
	n := newNode(url)
	for i := 0; i < 3; i++ {
		req := validateRequest(n, "tok")
		if r, err := c.do(&req, false); err != nil || r.Status != 200 {
			t.Fatalf("GET %d: %d %v (a closed idle connection must be retried)", i, r.Status, err)
		}
	}
	// A POST on the dead connection is not replayed: it fails, and the
	// next one goes out on a fresh connection.
	post := issueCCRequest(n, newCreds("a", "b"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := requests.Load()
		_, err := c.do(&post, false)
		if err != nil {
			if cl := errorClass(0, err); cl != "conn-reset" {
				t.Fatalf("POST on a closed connection: class %q (%v)", cl, err)
			}
			if requests.Load() != before {
				t.Fatal("the failed POST reached the server")
			}
			break
		}
		// The server's close had not arrived yet; try again.
		if time.Now().After(deadline) {
			t.Fatal("POST never saw the closed connection")
		}
	}
	if r, err := c.do(&post, false); err != nil || r.Status != 200 {
		t.Fatalf("POST after the failure: %d %v", r.Status, err)
	}
}

// silentServer accepts connections and never answers; received gets one
// value per request line read.
func silentServer(t *testing.T) (url string, received chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received = make(chan struct{}, 16)
	var mu sync.Mutex
	var open []net.Conn
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			go func() {
				if _, err := http.ReadRequest(bufio.NewReader(nc)); err == nil {
					received <- struct{}{}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range open {
			nc.Close()
		}
	})
	return "http://" + ln.Addr().String(), received
}

func TestWireClientTimeoutIsClassified(t *testing.T) {
	url, _ := silentServer(t)
	c := newWireClient(context.Background(), 50*time.Millisecond)
	defer c.close()
	req := validateRequest(newNode(url), "tok")
	_, err := c.do(&req, false)
	if cl := errorClass(0, err); cl != "timeout" {
		t.Fatalf("class %q for %v", cl, err)
	}
}

func TestWireClientCancelUnblocks(t *testing.T) {
	url, received := silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := newWireClient(ctx, time.Hour)
	defer c.close()
	done := make(chan error, 1)
	go func() {
		req := validateRequest(newNode(url), "tok")
		_, err := c.do(&req, false)
		done <- err
	}()
	<-received
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled request reported success")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancel did not unblock the request")
	}
}

func TestWireClientRefusesNonLoopback(t *testing.T) {
	c := newWireClient(context.Background(), time.Second)
	req := validateRequest(newNode("http://192.0.2.1:80"), "tok")
	if _, err := c.do(&req, false); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err %v", err)
	}
}

// fixedServer answers every request on every connection with the same
// bytes, reading requests without parsing them (GET, no body): about the
// cheapest server there is, so a benchmark against it measures the client.
func fixedServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	answer := []byte("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nX-Token-Subject: c_xxxxxxxxxxxxxxxxxxxxxx\r\nContent-Length: 0\r\n\r\n")
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := nc.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// BenchmarkClients compares the CPU cost per /validate request of the wire
// client with the net/http client it replaced; run with -cpuprofile to see
// where each spends it.
func BenchmarkClients(b *testing.B) {
	n := newNode(fixedServer(b))
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			c := newWireClient(context.Background(), 5*time.Second)
			defer c.close()
			req := validateRequest(n, "at_0123456789abcdef0123456789abcdef")
			for pb.Next() {
				if r, err := c.do(&req, false); err != nil || r.Status != 200 {
					b.Fatal(r.Status, err)
				}
			}
		})
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		hc := newHTTPClient(64, 5*time.Second)
		defer hc.CloseIdleConnections()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := newValidateReq(context.Background(), n, "at_0123456789abcdef0123456789abcdef")
				if r, err := do(hc, req, false); err != nil || r.Status != 200 {
					b.Fatal(r.Status, err)
				}
			}
		})
	})
}

// BenchmarkRunLoadValidate is the whole closed loop (scheduling, the wire
// client, recording) at 256 workers against fixedServer; ns/op is wall
// time per request on this machine, -cpuprofile shows the split.
func BenchmarkRunLoadValidate(b *testing.B) {
	e := &env{nodes: []node{newNode(fixedServer(b))}, timeout: 5 * time.Second, pool: newTokenPool([]string{"a", "b", "c"}, 0)}
	spec := loadSpec{Concurrency: 256, Duration: time.Hour, MaxRequests: int64(b.N), Interval: time.Second, Seed: 1}
	b.ResetTimer()
	out := runLoad(context.Background(), spec, newScenario(ScenarioValidate, e, nil), nil)
	b.StopTimer()
	if got := out.Total.count(); got != int64(b.N) || out.Total.errorCount() != 0 {
		b.Fatalf("%d requests (%d errors), want %d", got, out.Total.errorCount(), b.N)
	}
}
