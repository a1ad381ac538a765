package fsm

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// testdata/snapshot-vN.bin is an image written by the version N writer
// (the tree before snapshot version N+1) after a workload, and
// snapshot-vN.lookups what that state answered: every token at four times,
// the clients and the users. The version 2 image also holds a grace retry
// (an orphaned refresh token); the version 3 one clients with flags. A
// node upgraded in place restores its old snapshot, so each image must
// restore to exactly that.
func TestRestoreOlderImages(t *testing.T) {
	for _, v := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) {
			img, err := os.ReadFile(fmt.Sprintf("testdata/snapshot-v%d.bin", v))
			if err != nil {
				t.Fatal(err)
			}
			if int(img[4]) != v {
				t.Fatalf("golden image has version %d, want %d", img[4], v)
			}
			want, err := os.ReadFile(fmt.Sprintf("testdata/snapshot-v%d.lookups", v))
			if err != nil {
				t.Fatal(err)
			}
			f := New()
			if err := f.Restore(bytes.NewReader(img)); err != nil {
				t.Fatalf("version %d image: %v", v, err)
			}
			checkInvariants(t, f)
			got := renderGolden(t, f, string(want))
			if got != string(want) {
				t.Fatalf("restored version %d state differs:\n%s", v, diffLines(string(want), got))
			}
			for _, c := range f.Clients() {
				if c.Introspect && v < snapshotVersionFlags {
					t.Errorf("client %q of a version %d image may introspect", c.ID, v)
				}
				if c.AccessTokenFormat != "" || c.PostLogoutRedirectURIs != nil {
					t.Errorf("client %q of a version %d image has OpenID fields", c.ID, v)
				}
			}
			for _, u := range f.Users() {
				if userHasClaims(u) {
					t.Errorf("user %q of a version %d image has claims", u.Username, v)
				}
			}
			if keys, gen := f.SigningKeys(); keys != nil || gen != 0 || f.SessionCount() != 0 || f.ConsentCount() != 0 {
				t.Errorf("version %d image restored OpenID state", v)
			}
			// It snapshots again in the current version and round trips.
			if img2 := snapshotBytes(t, f); img2[4] != snapshotVersion {
				t.Fatalf("re-snapshot version %d", img2[4])
			}
			roundTrip(t, f)
		})
	}
}

// renderGolden lists f's answers in the golden file's format, for the tokens and
// times the golden file names.
func renderGolden(t *testing.T, f *FSM, golden string) string {
	t.Helper()
	var nows []int64
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d\n", f.AppliedIndex())
	for _, line := range strings.Split(golden, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nows":
			b.WriteString(line + "\n")
			for _, s := range fields[1:] {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				nows = append(nows, n)
			}
		case "token":
			raw, err := hex.DecodeString(fields[1])
			if err != nil || len(raw) != len(Hash{}) {
				t.Fatalf("bad golden line %q", line)
			}
			h := Hash(raw)
			fmt.Fprintf(&b, "token %x", h)
			for _, now := range nows {
				tok, ok := f.Lookup(h, now)
				if !ok {
					b.WriteString(" -")
					continue
				}
				fmt.Fprintf(&b, " %d/%d/%q/%q/%q/%q/%d/%d", tok.Kind, tok.GrantID, tok.ClientID, tok.Tenant, tok.Username, tok.Scope, tok.IssuedAt, tok.ExpiresAt)
			}
			b.WriteString("\n")
		}
	}
	for _, c := range f.Clients() {
		fmt.Fprintf(&b, "client %q %q %x %v %q %q %q %d %d\n", c.ID, c.Name, c.SecretHash[:8], c.Public, c.RedirectURIs, c.GrantTypes, c.Scopes, c.CreatedAt, c.UpdatedAt)
	}
	for _, u := range f.Users() {
		fmt.Fprintf(&b, "user %q %q %q %d\n", u.Tenant, u.Username, u.PasswordHash, u.CreatedAt)
	}
	return b.String()
}
