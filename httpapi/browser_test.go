package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/tokend/tokend/keys"
)

// The authorization code flow in a real browser: Debian's chromium,
// headless, driven by chromedp, against a real server and a small client
// app on 127.0.0.1 that receives the redirect. The test fails (it does not
// skip) when chromium is missing: CI installs it.
//
// TOKEND_SCREENSHOTS=<dir> also saves login.png and consent.png there
// (go test ./httpapi/ -run TestBrowser -args, with the variable set to
// ../docs, refreshes the screenshots under docs/).

const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds each browser step, so a stuck step fails fast and
// says which one it was.
const stepTimeout = 20 * time.Second

// azRun runs one browser action with stepTimeout. tctx must have run once
// (a timeout on the first run would bound the tab's life instead).
func azRun[T any](tctx context.Context, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(tctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func azDoSteps(tctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	_, err := azRun(tctx, chromedp.Steps(steps...))
	return err
}

// azApp is the client application: it records what arrives at its redirect
// URI and shows a page the browser can wait for.
type azApp struct {
	srv *httptest.Server
	got chan url.Values
}

func newAZApp(t *testing.T) *azApp {
	a := &azApp{got: make(chan url.Values, 8)}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case a.got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>client app</title><p id="done">Back at the client app.</p>`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// wait returns the next redirect the app received.
func (a *azApp) wait(ctx context.Context, t *testing.T) url.Values {
	t.Helper()
	select {
	case v := <-a.got:
		return v
	case <-ctx.Done():
		t.Fatal("the client app never received the redirect")
		return nil
	}
}

func TestBrowserCodeFlow(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is required for this test (apt-get install chromium): %v", err)
	}
	var km *keys.Manager
	e := newAZEnv(t, nil, withKeys(t, nil, &km)) // oidc_test.go
	app := newAZApp(t)
	client := e.client("Toon Demo App", []string{app.srv.URL + "/callback"}, nil, []string{"read", "write"}, false)
	e.user("eneco", "alice", "correct horse")
	cfg := e.oauth2Config(client, "read", "write")

	// One bound for everything the browser does: CI runs -race on two
	// busy cores.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "tokend-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // after the browser has exited
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(900, 760),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}

	shots := os.Getenv("TOKEND_SCREENSHOTS")
	screenshot := func(tctx context.Context, name string) {
		if shots == "" {
			return
		}
		buf, err := azRun(tctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// signIn opens /authorize in a new tab and signs in; it returns the tab.
	signIn := func(t *testing.T, authURL, password string, shoot bool) context.Context {
		tctx, tcancel := chromedp.NewContext(bctx)
		t.Cleanup(tcancel)
		if err := chromedp.Do(tctx); err != nil { // open the tab
			t.Fatalf("open tab: %v", err)
		}
		if err := azDoSteps(tctx,
			chromedp.Navigate(authURL),
			chromedp.WaitVisible(chromedp.ID("username")),
		); err != nil {
			t.Fatalf("open login page: %v", err)
		}
		if loc, _ := azRun(tctx, chromedp.Location()); !strings.HasPrefix(loc, e.srv.URL+"/authorize") {
			t.Fatalf("login page at %q", loc)
		}
		if shoot {
			screenshot(tctx, "login.png")
		}
		if err := azDoSteps(tctx,
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		); err != nil {
			t.Fatalf("submit login: %v", err)
		}
		return tctx
	}

	t.Run("allow", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		tctx := signIn(t, cfg.AuthCodeURL("state-allow", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("tenant_id", "eneco")), "correct horse", true)
		if err := azDoSteps(tctx, chromedp.WaitVisible(chromedp.ID("allow"))); err != nil {
			t.Fatalf("consent page: %v", err)
		}
		page, err := azRun(tctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil || !strings.Contains(page, "Toon Demo App") || !strings.Contains(page, "read") || !strings.Contains(page, "write") {
			t.Fatalf("consent page text %q (%v)", page, err)
		}
		screenshot(tctx, "consent.png")
		if err := azDoSteps(tctx,
			chromedp.Click(chromedp.ID("allow")),
			chromedp.WaitVisible(chromedp.ID("done")),
		); err != nil {
			t.Fatalf("approve: %v", err)
		}
		v := app.wait(ctx, t)
		if loc, _ := azRun(tctx, chromedp.Location()); !strings.HasPrefix(loc, app.srv.URL+"/callback?") {
			t.Errorf("browser ended at %q", loc)
		}
		if v.Get("state") != "state-allow" || v.Get("code") == "" || v.Get("iss") != azIssuer {
			t.Fatalf("redirect params %v", v)
		}
		xctx, xcancel := context.WithTimeout(e.ctx(), 20*time.Second)
		defer xcancel()
		tok, err := cfg.Exchange(xctx, v.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		status, h := e.validate(tok.AccessToken)
		if status != http.StatusOK || h.Get("X-Token-Subject") != "eneco/alice" || h.Get("X-Token-Tenant") != "eneco" ||
			h.Get("X-Token-Scope") != "read write" {
			t.Fatalf("/validate %d %v", status, h)
		}
	})

	t.Run("deny", func(t *testing.T) {
		tctx := signIn(t, cfg.AuthCodeURL("state-deny", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("tenant_id", "eneco")), "correct horse", false)
		if err := azDoSteps(tctx,
			chromedp.WaitVisible(chromedp.ID("deny")),
			chromedp.Click(chromedp.ID("deny")),
			chromedp.WaitVisible(chromedp.ID("done")),
		); err != nil {
			t.Fatalf("deny: %v", err)
		}
		v := app.wait(ctx, t)
		if v.Get("error") != "access_denied" || v.Get("state") != "state-deny" || v.Has("code") {
			t.Fatalf("redirect params %v", v)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		tctx := signIn(t, cfg.AuthCodeURL("state-wrong", oauth2.SetAuthURLParam("tenant_id", "eneco")), "wrong horse", false)
		if err := azDoSteps(tctx, chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
			t.Fatalf("error message: %v", err)
		}
		msg, err := azRun(tctx, chromedp.Text(chromedp.ID("error")))
		if err != nil || !strings.Contains(msg, "Incorrect username or password") {
			t.Fatalf("error text %q (%v)", msg, err)
		}
		// The form is still there, the username kept, focus on the password.
		user, err := azRun(tctx, chromedp.Value(chromedp.ID("username")))
		if err != nil || user != "alice" {
			t.Fatalf("username field %q (%v)", user, err)
		}
		select {
		case v := <-app.got:
			t.Fatalf("the app got a redirect after a wrong password: %v", v)
		default:
		}
	})

	// An OpenID sign-in with a nonce, then prompt=none: the sign-in
	// session and the remembered consent bring the browser straight
	// back with a code, no page shown.
	t.Run("openid then prompt=none", func(t *testing.T) {
		azBrowserOpenID(t, azBrowserRun{e: e, app: app, client: client, km: km, ctx: ctx, bctx: bctx, signIn: signIn})
	})
}

// azBrowserRun is what the browser walk's subtests share.
type azBrowserRun struct {
	e      *azEnv
	app    *azApp
	client azClient
	km     *keys.Manager
	ctx    context.Context // bounds everything the browser does
	bctx   context.Context // the browser
	signIn func(t *testing.T, authURL, password string, shoot bool) context.Context
}

// azBrowserOpenID: an OpenID sign-in with a nonce, prompt=none with no
// page, and prompt=login straight back after the password.
func azBrowserOpenID(t *testing.T, b azBrowserRun) {
	e, app, client, km, ctx, bctx, signIn := b.e, b.app, b.client, b.km, b.ctx, b.bctx, b.signIn
	ocfg := e.oauth2Config(client, "openid", "read")
	verifier := oauth2.GenerateVerifier()
	tctx := signIn(t, ocfg.AuthCodeURL("state-oidc", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("tenant_id", "eneco"), oauth2.SetAuthURLParam("nonce", "browser-nonce")), "correct horse", false)
	if err := azDoSteps(tctx,
		chromedp.WaitVisible(chromedp.ID("allow")),
		chromedp.Click(chromedp.ID("allow")),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("approve: %v", err)
	}
	v := app.wait(ctx, t)
	xctx, xcancel := context.WithTimeout(e.ctx(), 20*time.Second)
	defer xcancel()
	tok, err := ocfg.Exchange(xctx, v.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	if c := oiClaims(t, km, idt); c["nonce"] != "browser-nonce" || c["sub"] != "eneco/alice" || c["aud"] != client.ID {
		t.Fatalf("ID token claims %v", c)
	}

	tctx2, tcancel2 := chromedp.NewContext(bctx)
	defer tcancel2()
	if err := chromedp.Do(tctx2); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	if err := azDoSteps(tctx2,
		chromedp.Navigate(ocfg.AuthCodeURL("state-none", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("tenant_id", "eneco"), oauth2.SetAuthURLParam("nonce", "second-nonce"),
			oauth2.SetAuthURLParam("prompt", "none"))),
		chromedp.WaitVisible(chromedp.ID("done")),
	); err != nil {
		t.Fatalf("prompt=none: %v", err)
	}
	v = app.wait(ctx, t)
	if v.Get("state") != "state-none" || v.Get("code") == "" || v.Has("error") {
		t.Fatalf("prompt=none redirect params %v", v)
	}
	tok, err = ocfg.Exchange(xctx, v.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange after prompt=none: %v", err)
	}
	if c := oiClaims(t, km, tok.Extra("id_token").(string)); c["nonce"] != "second-nonce" {
		t.Fatalf("ID token after prompt=none: %v", c)
	}

	// prompt=login asks for the password again; the consent is
	// remembered, so the login post itself redirects to the app
	// (which the login page's form-action must allow).
	tctx3 := signIn(t, ocfg.AuthCodeURL("state-login", oauth2.SetAuthURLParam("tenant_id", "eneco"),
		oauth2.SetAuthURLParam("nonce", "third-nonce"), oauth2.SetAuthURLParam("prompt", "login")), "correct horse", false)
	if err := azDoSteps(tctx3, chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		t.Fatalf("after re-login: %v", err)
	}
	if v = app.wait(ctx, t); v.Get("state") != "state-login" || v.Get("code") == "" {
		t.Fatalf("prompt=login redirect params %v", v)
	}
}
