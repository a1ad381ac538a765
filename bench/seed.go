package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// seedTenant is the tenant the bench creates its users in.
const seedTenant = "bench"

// seedNeeds says what a scenario needs seeded.
type seedNeeds struct {
	tokens int // pre-issued client_credentials access tokens
	users  int
	chains int // refresh-token chains (one password grant each)
	// jwt registers the bench client for JWT access tokens.
	jwt bool
}

func needsFor(cfg *Config, mix []MixEntry) seedNeeds {
	var n seedNeeds
	switch cfg.Scenario {
	case ScenarioValidate, ScenarioIntrospect, ScenarioRevoke, ScenarioBaseline:
		n.tokens = cfg.Tokens
	case ScenarioValidateJWT:
		n.tokens, n.jwt = cfg.Tokens, true
	case ScenarioIssueCCJWT:
		n.jwt = true
	case ScenarioMixed:
		for _, e := range mix {
			if (e.Op == opValidate || e.Op == opIntrospect || e.Op == opRevoke) && e.Weight > 0 {
				n.tokens = cfg.Tokens
			}
		}
	case ScenarioIssuePassword:
		n.users = cfg.Users
	case ScenarioRefresh:
		n.users = cfg.Users
		n.chains = cfg.Concurrency
	}
	if cfg.CompareBaseline && n.tokens == 0 {
		n.tokens = min(cfg.Tokens, 10_000) // the baseline needs tokens to validate
	}
	return n
}

// seeded is what seeding produced.
type seeded struct {
	creds  creds
	users  []user
	tokens []string
	chains []string
}

// seeder talks to the admin API and the token endpoint to prepare a run.
type seeder struct {
	client *http.Client
	nodes  []node
	admin  string
	log    io.Writer // progress lines; nil for none
	tty    bool      // redraw the progress line in place
	runID  string
}

func randomString(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *seeder) adminPost(ctx context.Context, path string, body, out any) error {
	buf, _ := json.Marshal(body)
	url := s.nodes[0].Base + path
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.admin)
	r, err := do(s.client, req, true)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	switch {
	case r.Status == http.StatusNotFound:
		return fmt.Errorf("POST %s: 404: the node has no admin API (start it with --admin-token)", url)
	case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		return fmt.Errorf("POST %s: %d: admin token refused (check --admin-token)", url, r.Status)
	case r.Status/100 != 2:
		return fmt.Errorf("POST %s: status %d: %s", url, r.Status, bytes.TrimSpace(r.Body))
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			return fmt.Errorf("POST %s: bad JSON answer: %v", url, err)
		}
	}
	return nil
}

func (s *seeder) createClient(ctx context.Context, jwt bool) (creds, error) {
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	reg := map[string]any{
		"name":          "tokend-bench " + s.runID,
		"redirect_uris": []string{},
		"grant_types":   []string{"client_credentials", "password", "refresh_token"},
		"scopes":        []string{"read", "write"},
		"public":        false,
	}
	if jwt {
		// Only then: a build without JWT access tokens (bench/before-after.sh)
		// refuses the unknown field.
		reg["access_token_format"] = "jwt"
	}
	err := s.adminPost(ctx, "/admin/clients", reg, &out)
	if err != nil {
		return creds{}, fmt.Errorf("creating the bench client: %w", err)
	}
	if out.ClientID == "" || out.ClientSecret == "" {
		return creds{}, fmt.Errorf("creating the bench client: answer lacks client_id or client_secret")
	}
	return newCreds(out.ClientID, out.ClientSecret), nil
}

func (s *seeder) createUsers(ctx context.Context, n int) ([]user, error) {
	users := make([]user, n)
	for i := range users {
		u := user{Tenant: seedTenant, Username: fmt.Sprintf("bench-%s-%d", s.runID, i), Password: randomString(18)}
		if err := s.adminPost(ctx, "/admin/users", map[string]string{
			"tenant": u.Tenant, "username": u.Username, "password": u.Password,
		}, nil); err != nil {
			return nil, fmt.Errorf("creating user %s: %w", u.Username, err)
		}
		users[i] = u
	}
	return users, nil
}

// parallel runs n jobs on `workers` goroutines; job i gets node i%len(nodes).
// A job that fails with a retryable status (503, 429, transport) is retried
// with backoff a few times. It reports progress every second.
func (s *seeder) parallel(ctx context.Context, what string, n, workers int, job func(ctx context.Context, i int, nd node) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				var err error
				for attempt := 0; attempt < 6; attempt++ {
					if err = job(ctx, i, s.nodes[i%len(s.nodes)]); err == nil || !retryable(err) {
						break
					}
					select {
					case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
					case <-ctx.Done():
					}
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("%s: %w", what, err); cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	stopLog := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if s.log != nil && s.tty {
					fmt.Fprintf(s.log, "\rseeding %s %d/%d ", what, done.Load(), n)
				} else if s.log != nil {
					fmt.Fprintf(s.log, "seeding %s %d/%d\n", what, done.Load(), n)
				}
			case <-stopLog:
				return
			}
		}
	}()
	wg.Wait()
	close(stopLog)
	<-logged
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.log != nil && s.tty && n >= 1000 {
		fmt.Fprintf(s.log, "\rseeding %s %d/%d done\n", what, n, n)
	}
	return nil
}

type statusError struct {
	class string
	body  string
}

func (e *statusError) Error() string { return e.class + " " + e.body }

func retryable(err error) bool {
	se, ok := err.(*statusError)
	if !ok {
		return true // transport
	}
	switch se.class {
	case "503", "429", "timeout", "conn-reset", "conn-refused", "transport":
		return true
	}
	return false
}

func (s *seeder) issueTokens(ctx context.Context, c creds, n int) ([]string, error) {
	toks := make([]string, n)
	err := s.parallel(ctx, "access tokens", n, 64, func(ctx context.Context, i int, nd node) error {
		r, err := do(s.client, newIssueCCReq(ctx, nd, c), true)
		tr, class := judgeToken(r, err, false)
		if class != "" {
			return &statusError{class: class, body: string(bytes.TrimSpace(r.Body))}
		}
		toks[i] = tr.AccessToken
		return nil
	})
	return toks, err
}

func (s *seeder) issueChains(ctx context.Context, c creds, users []user, n int) ([]string, error) {
	toks := make([]string, n)
	err := s.parallel(ctx, "refresh chains", n, 8, func(ctx context.Context, i int, nd node) error {
		r, err := do(s.client, newIssuePasswordReq(ctx, nd, c, users[i%len(users)]), true)
		tr, class := judgeToken(r, err, true)
		if class != "" {
			return &statusError{class: class, body: string(bytes.TrimSpace(r.Body))}
		}
		toks[i] = tr.RefreshToken
		return nil
	})
	return toks, err
}

// seed creates the bench client, users, token pool and refresh chains.
func (s *seeder) seed(ctx context.Context, need seedNeeds) (*seeded, error) {
	out := &seeded{}
	var err error
	if out.creds, err = s.createClient(ctx, need.jwt); err != nil {
		return nil, err
	}
	if need.users > 0 || need.chains > 0 {
		if out.users, err = s.createUsers(ctx, max(need.users, 1)); err != nil {
			return nil, err
		}
	}
	if need.tokens > 0 {
		if out.tokens, err = s.issueTokens(ctx, out.creds, need.tokens); err != nil {
			return nil, err
		}
	}
	if need.chains > 0 {
		if out.chains, err = s.issueChains(ctx, out.creds, out.users, need.chains); err != nil {
			return nil, err
		}
	}
	return out, nil
}
