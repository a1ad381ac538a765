package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokend/tokend/fsm"
)

// metrics never carries a token, secret or user name: labels are route
// templates and status codes only. Raft, lease and apply-latency metrics
// come from the cluster package on the same registry.
type metrics struct {
	gatherer prometheus.Gatherer
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// adminAuthFailures counts requests to the admin surface that
	// presented a wrong admin token; adminThrottled, those refused
	// because their address failed too often (adminauth.go).
	adminAuthFailures prometheus.Counter
	adminThrottled    prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, f *fsm.FSM) (*metrics, error) {
	m := &metrics{
		gatherer: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_http_requests_total",
			Help: "HTTP requests by route template and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_http_request_duration_seconds",
			Help:    "HTTP request latency by route template.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		adminAuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokend_admin_auth_failures_total",
			Help: "Requests to the admin surface that presented a wrong admin token.",
		}),
		adminThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokend_admin_auth_throttled_total",
			Help: "Requests to the admin surface refused with 429 because their address failed to authenticate too often.",
		}),
	}
	// The state machine's sizes: each is O(1) (a length read under a lock
	// or an atomic) except tokend_live_tokens, which sums 256 shard
	// lengths.
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	state := []prometheus.Collector{
		gauge("tokend_live_tokens", "Tokens and codes held in memory (including superseded refresh tokens and redeemed codes kept for reuse detection).", f.LiveTokens),
		gauge("tokend_live_grants", "Grants held in memory: those with a token or code not yet purged or revoked.", f.LiveGrants),
		gauge("tokend_clients", "Registered OAuth clients.", f.ClientCount),
		gauge("tokend_users", "Registered users.", f.UserCount),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokend_purged_tokens_total",
			Help: "Expired tokens and codes this node's state machine dropped in purges since the process started (including purges replayed from the log).",
		}, func() float64 { return float64(f.PurgedTokens()) }),
	}
	for _, c := range append([]prometheus.Collector{m.requests, m.latency, m.adminAuthFailures, m.adminThrottled}, state...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// route returns an observer bound to one route, so the hot path does no
// label lookups beyond the status code's.
func (m *metrics) route(route string) func(status int, d time.Duration) {
	lat := m.latency.WithLabelValues(route)
	byStatus := map[int]prometheus.Counter{}
	for _, code := range []int{200, 201, 204, 302, 303, 400, 401, 403, 404, 405, 413, 415, 429, 500, 503} {
		byStatus[code] = m.requests.WithLabelValues(route, strconv.Itoa(code))
	}
	return func(status int, d time.Duration) {
		lat.Observe(d.Seconds())
		if c, ok := byStatus[status]; ok {
			c.Inc()
			return
		}
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}
}

// handler serves /metrics. It is not behind the admin token, so that
// Prometheus can scrape it without one: everything on it is an aggregate
// (counts, latencies, Raft and lease state), never a token, a secret, a
// user name or a peer's address.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}
