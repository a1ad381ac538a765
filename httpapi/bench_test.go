package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// The /validate benchmarks put tokend's handler and a bare net/http handler
// of the same shape (same headers, empty body) behind real loopback
// listeners and drive both with the same keep-alive client, so the ratio
// says what tokend's routing, hashing and lookup cost over net/http itself.

func benchServers(b *testing.B, tokens int) (tokendURL, baseURL string, pool []string) {
	b.Helper()
	s, f := newMemServer(b)
	f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "bench", Scopes: []string{"read"}}}))
	exp := time.Now().Add(time.Hour).UnixNano()
	for i := 0; i < tokens; i++ {
		tok := newSecret(prefixAccess)
		f.Apply(uint64(i+2), fsm.Encode(&fsm.IssueGrant{ClientID: "bench", Tenant: "default", Username: "u" + strconv.Itoa(i%100),
			Scope: "read", IssuedAt: time.Now().UnixNano(), Access: fsm.TokenSpec{Hash: fsm.HashOf(tok), ExpiresAt: exp}}))
		pool = append(pool, tok)
	}
	ts := httptest.NewServer(s)
	b.Cleanup(ts.Close)
	exps := strconv.FormatInt(exp/int64(time.Second), 10)
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h["X-Token-Subject"] = []string{"default/u1"}
		h["X-Token-Client-Id"] = []string{"bench"}
		h["X-Token-Scope"] = []string{"read"}
		h["X-Token-Tenant"] = []string{"default"}
		h["X-Token-Expires-At"] = []string{exps}
		h["Cache-Control"] = []string{"no-store"}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(bare.Close)
	return ts.URL, bare.URL, pool
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
}

// hammer sends n validations to url from conc goroutines and returns
// requests per second.
func hammer(b *testing.B, c *http.Client, url string, pool []string, n, conc int) float64 {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url+"/validate", nil)
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				req.Header.Set("Authorization", "Bearer "+pool[int(i)%len(pool)])
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d validations failed", f, n)
	}
	return float64(n) / time.Since(start).Seconds()
}

func BenchmarkValidateHTTP(b *testing.B) {
	tokendURL, baseURL, pool := benchServers(b, 10000)
	for _, target := range []struct{ name, url string }{{"tokend", tokendURL}, {"baseline", baseURL}} {
		b.Run(target.name, func(b *testing.B) {
			c := benchClient()
			b.ResetTimer()
			rps := hammer(b, c, target.url, pool, b.N, 16)
			b.ReportMetric(rps, "req/s")
		})
	}
}

// BenchmarkValidateRatio measures tokend and the baseline back to back in
// one run, alternating rounds so machine noise hits both, and reports
// tokend's throughput as a fraction of the baseline's.
func BenchmarkValidateRatio(b *testing.B) {
	tokendURL, baseURL, pool := benchServers(b, 10000)
	c := benchClient()
	hammer(b, c, tokendURL, pool, 2000, 16) // warm connections
	hammer(b, c, baseURL, pool, 2000, 16)
	b.ResetTimer()
	var tok, base float64
	for i := 0; i < b.N; i++ {
		tok += hammer(b, c, tokendURL, pool, 20000, 16)
		base += hammer(b, c, baseURL, pool, 20000, 16)
	}
	b.ReportMetric(tok/float64(b.N), "tokend-req/s")
	b.ReportMetric(base/float64(b.N), "baseline-req/s")
	b.ReportMetric(tok/base, "ratio")
}

func BenchmarkValidateHandler(b *testing.B) {
	s, f := newMemServer(b)
	f.Apply(1, fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{ID: "bench", Scopes: []string{"read"}}}))
	tok := newSecret(prefixAccess)
	f.Apply(2, fsm.Encode(&fsm.IssueGrant{ClientID: "bench", Scope: "read", IssuedAt: 1,
		Access: fsm.TokenSpec{Hash: fsm.HashOf(tok), ExpiresAt: time.Now().Add(time.Hour).UnixNano()}}))
	req := httptest.NewRequest(http.MethodGet, "/validate", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(fmt.Sprint(w.Code))
		}
	}
}
