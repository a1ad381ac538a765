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

// testdata/snapshot-v1.bin is an image written by the version 1 writer (the
// tree before snapshot version 2) after a 250-entry workload, and
// snapshot-v1.lookups what that state answered: every token at four times,
// the clients and the users. A node upgraded in place restores its old
// snapshot, so the image must restore to exactly that.
func TestRestoreVersion1Image(t *testing.T) {
	img, err := os.ReadFile("testdata/snapshot-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if img[4] != 1 {
		t.Fatalf("golden image has version %d, want 1", img[4])
	}
	want, err := os.ReadFile("testdata/snapshot-v1.lookups")
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(bytes.NewReader(img)); err != nil {
		t.Fatalf("version 1 image: %v", err)
	}
	checkInvariants(t, f)
	got := renderV1(t, f, string(want))
	if got != string(want) {
		t.Fatalf("restored version 1 state differs:\n%s", diffLines(string(want), got))
	}
	// It snapshots again in the current version and round trips.
	if img2 := snapshotBytes(t, f); img2[4] != snapshotVersion {
		t.Fatalf("re-snapshot version %d", img2[4])
	}
	roundTrip(t, f)
}

// renderV1 lists f's answers in the golden file's format, for the tokens and
// times the golden file names.
func renderV1(t *testing.T, f *FSM, golden string) string {
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
