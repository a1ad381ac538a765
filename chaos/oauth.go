package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// oauthClient sends the load's requests as the registered client and
// records every answer in the ledger.
type oauthClient struct {
	hc       *http.Client
	id, sec  string
	ledger   *ledger
	loadTime time.Duration // client timeout of one request
}

func newOAuthClient(id, secret string, l *ledger, timeout time.Duration) *oauthClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &oauthClient{hc: &http.Client{Timeout: timeout, Transport: tr}, id: id, sec: secret, ledger: l, loadTime: timeout}
}

func (c *oauthClient) close() { c.hc.CloseIdleConnections() }

func (c *oauthClient) do(ctx context.Context, method, u, body string, hdr map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// issue asks nd for a client_credentials token; on 200 the token is in the
// ledger and returned. label prefixes the answer's class ("issue",
// "failover issue").
func (c *oauthClient) issue(ctx context.Context, nd *node, label string) *tokenRec {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.id}, "client_secret": {c.sec}}
	code, body, err := c.do(ctx, http.MethodPost, nd.url()+"/token", form.Encode(), nil)
	if err == nil && code == http.StatusOK {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
			c.ledger.answer(label+" 200 without a token", true)
			return nil
		}
		c.ledger.answer(label+" ok", false)
		return c.ledger.addIssued(tok.AccessToken)
	}
	c.ledger.answer(label+" "+class(code, err), unexpectedAnswer(code, err))
	return nil
}

// revoke revokes rec at nd (RFC 7009); only a 200 acknowledges it.
func (c *oauthClient) revoke(ctx context.Context, nd *node, rec *tokenRec) bool {
	form := url.Values{"token": {rec.tok}, "client_id": {c.id}, "client_secret": {c.sec}}
	code, _, err := c.do(ctx, http.MethodPost, nd.url()+"/revoke", form.Encode(), nil)
	ok := err == nil && code == http.StatusOK
	c.ledger.revokeDone(rec, ok)
	if ok {
		c.ledger.answer("revoke ok", false)
	} else {
		c.ledger.answer("revoke "+class(code, err), unexpectedAnswer(code, err))
	}
	return ok
}

// validate asks nd about tok: 200 active, 401 inactive, anything else
// (503, a transport error) no information.
func (c *oauthClient) validate(ctx context.Context, nd *node, tok string) (int, error) {
	code, _, err := c.do(ctx, http.MethodGet, nd.url()+"/validate", "", map[string]string{"Authorization": "Bearer " + tok})
	return code, err
}

// class names an answer: the status code, or the kind of transport error.
func class(code int, err error) string {
	if err == nil {
		return strconv.Itoa(code)
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "transport"
}

// unexpectedAnswer says whether a failed write's answer is one tokend
// should never give a well-formed request, faults or not: 503 and lost
// connections are what faults look like; a 4xx or a 5xx other than 503 is
// not.
func unexpectedAnswer(code int, err error) bool {
	return err == nil && code != http.StatusServiceUnavailable
}
