package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/tokend/tokend/fsm"
)

// backupState is a small state: two clients, a user, and grants with
// access, refresh and code tokens, one of them revoked.
func backupState(t testing.TB) (*fsm.FSM, []string) {
	t.Helper()
	f := fsm.New()
	var index uint64
	apply := func(c fsm.Command) fsm.Result {
		index++
		r := f.Apply(index, fsm.Encode(c))
		if r.Outcome != fsm.OK {
			t.Fatalf("apply %T: outcome %v", c, r.Outcome)
		}
		return r
	}
	now := time.Now().UnixNano()
	later := now + int64(time.Hour)
	apply(&fsm.PutClient{Client: fsm.Client{ID: "c1", Name: "one", SecretHash: fsm.HashOf("secret-1"), GrantTypes: []string{"password"}}, Create: true})
	apply(&fsm.PutClient{Client: fsm.Client{ID: "c2", Name: "two", Public: true}, Create: true})
	apply(&fsm.PutUser{User: fsm.User{Tenant: "t", Username: "alice", PasswordHash: "$argon2id$x"}, Create: true})
	var raw []string
	for i := range 5 {
		a, r := "access-"+string(rune('a'+i)), "refresh-"+string(rune('a'+i))
		raw = append(raw, a, r)
		apply(&fsm.IssueGrant{ClientID: "c1", Tenant: "t", Username: "alice", Scope: "read", IssuedAt: now,
			Access: fsm.TokenSpec{Hash: fsm.HashOf(a), ExpiresAt: later}, Refresh: fsm.TokenSpec{Hash: fsm.HashOf(r), ExpiresAt: later}})
	}
	apply(&fsm.IssueGrant{ClientID: "c2", Scope: "read", IssuedAt: now, Code: fsm.TokenSpec{Hash: fsm.HashOf("code-1"), ExpiresAt: later}, RedirectURI: "https://x.example/cb"})
	apply(&fsm.RevokeToken{Token: fsm.HashOf("access-a"), ClientID: "c1"})
	return f, raw
}

func testHeader(body int64) BackupHeader {
	return BackupHeader{ClusterID: "0123456789abcdef0123456789abcdef", NodeID: "node1", Index: 100, Term: 2,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), BodyBytes: body, TokendVersion: "test"}
}

func encodeBackup(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	var img bytes.Buffer
	if _, err := f.Snapshot().WriteTo(&img); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	h := testHeader(int64(img.Len()))
	n, err := WriteBackup(&out, h, &img)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := backupSize(h); err != nil || n != int64(out.Len()) || size != n {
		t.Fatalf("WriteBackup reported %d bytes, wrote %d; backupSize says %d, %v", n, out.Len(), size, err)
	}
	return out.Bytes()
}

func TestBackupRoundTrip(t *testing.T) {
	f, raw := backupState(t)
	file := encodeBackup(t, f)
	b, err := ReadBackup(iotest.OneByteReader(bytes.NewReader(file)))
	if err != nil {
		t.Fatal(err)
	}
	if b.Header != testHeader(b.Header.BodyBytes) {
		t.Errorf("header = %+v", b.Header)
	}
	if b.ImageVersion != 4 || b.ImageIndex != f.AppliedIndex() {
		t.Errorf("image version %d index %d, want 4 (the fsm snapshot format with OpenID state) and %d", b.ImageVersion, b.ImageIndex, f.AppliedIndex())
	}
	if sum := sha256.Sum256(file[:len(file)-sha256.Size]); b.Checksum != sum || !bytes.Equal(file[len(file)-sha256.Size:], sum[:]) {
		t.Error("the trailer is not the SHA-256 of everything before it")
	}
	now := time.Now()
	got, want := b.Stats(now), f.Stats(now.UnixNano())
	if got != want {
		t.Errorf("stats after round trip %+v, before %+v", got, want)
	}
	// 5 grants of the password client, one revoked (dropped), and the code grant.
	if want := (fsm.Stats{Clients: 2, Users: 1, Grants: 5, Tokens: 9, LiveAccess: 4, LiveRefresh: 4, LiveCodes: 1, MaxGrantID: 9}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	for i, tok := range raw {
		_, ok := b.State.Lookup(fsm.HashOf(tok), now.UnixNano())
		if ok != (i >= 2) {
			t.Errorf("token %d: live %v after round trip", i, ok)
		}
	}
	for _, secret := range append(raw, "secret-1") {
		if bytes.Contains(file, []byte(secret)) {
			t.Errorf("the file contains the raw value %q", secret)
		}
	}
}

func wantRefused(t *testing.T, what string, file []byte, contains string) {
	t.Helper()
	b, err := ReadBackup(bytes.NewReader(file))
	var be *BackupError
	if !errors.As(err, &be) || be.Code != "invalid_snapshot" {
		t.Fatalf("%s: ReadBackup = %v, %v; want an invalid_snapshot refusal", what, b, err)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Errorf("%s: error %q does not say %q", what, err, contains)
	}
}

// TestBackupRefusals: every flipped byte, every truncation and anything
// appended is refused with a clear error, never a panic; a flipped byte
// in the body or header is a checksum mismatch.
func TestBackupRefusals(t *testing.T) {
	f, _ := backupState(t)
	file := encodeBackup(t, f)
	bodyStart := backupPrefixLen + int(binary.BigEndian.Uint32(file[len(backupMagic)+1:]))
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 0x20
		want := "checksum mismatch"
		switch {
		case i < len(backupMagic):
			want = "not a tokend backup"
		case i == len(backupMagic):
			want = "format version"
		case i < backupPrefixLen:
			want = "" // a header length: truncated, too long or a bad header
		case i < bodyStart:
			want = "" // JSON that may no longer parse
		}
		wantRefused(t, "byte "+strconv.Itoa(i)+" flipped", bad, want)
	}
	for n := range len(file) {
		want := "truncated"
		if n == 0 {
			want = "not a tokend backup"
		}
		wantRefused(t, "first "+strconv.Itoa(n)+" bytes", file[:n], want)
	}
	wantRefused(t, "a byte appended", append(bytes.Clone(file), 0), "data after the checksum")
	wantRefused(t, "not a backup", []byte("TKDS\x03 an fsm image, not a backup"), "not a tokend backup")
}

// rewrap builds a backup around body with header h, a correct checksum
// and all: refusals that the checksum cannot catch.
func rewrap(t *testing.T, h BackupHeader, headerJSON string, body []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	out.WriteString(backupMagic)
	out.WriteByte(backupVersion)
	if headerJSON == "" {
		h.BodyBytes = int64(len(body))
		pre, err := backupPreamble(h)
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		out.Write(pre)
	} else {
		out.Write(binary.BigEndian.AppendUint32(nil, uint32(len(headerJSON))))
		out.WriteString(headerJSON)
	}
	out.Write(body)
	sum := sha256.Sum256(out.Bytes())
	out.Write(sum[:])
	return out.Bytes()
}

func TestBackupStrictHeaderAndImage(t *testing.T) {
	f, _ := backupState(t)
	var img bytes.Buffer
	f.Snapshot().WriteTo(&img)
	body := img.Bytes()
	wantRefused(t, "unknown header field", rewrap(t, BackupHeader{}, `{"cluster_id":"x","node_id":"n","index":100,"term":1,"created_at":"2026-01-01T00:00:00Z","body_bytes":`+strconv.Itoa(len(body))+`,"extra":1}`, body), "unknown field")
	wantRefused(t, "two JSON values", rewrap(t, BackupHeader{}, `{"cluster_id":"x","node_id":"n","index":100,"term":1,"created_at":"2026-01-01T00:00:00Z","body_bytes":`+strconv.Itoa(len(body))+`} {}`, body), "after the JSON object")
	wantRefused(t, "no cluster id", rewrap(t, BackupHeader{}, `{"node_id":"n","index":100,"term":1,"created_at":"2026-01-01T00:00:00Z","body_bytes":`+strconv.Itoa(len(body))+`}`, body), "cluster_id")
	wantRefused(t, "escape in node id", rewrap(t, BackupHeader{}, `{"cluster_id":"x","node_id":"n\u001b[2J","index":100,"term":1,"created_at":"2026-01-01T00:00:00Z","body_bytes":`+strconv.Itoa(len(body))+`}`, body), "unprintable")
	wantRefused(t, "body length too short", rewrap(t, BackupHeader{}, `{"cluster_id":"x","node_id":"n","index":100,"term":1,"created_at":"2026-01-01T00:00:00Z","body_bytes":`+strconv.Itoa(len(body)-1)+`}`, body), "")
	h := testHeader(0)
	h.Index = f.AppliedIndex() - 1
	wantRefused(t, "image past the header's index", rewrap(t, h, "", body), "past the header's index")
	garbage := bytes.Clone(body)
	garbage[len(garbage)-3] ^= 0xff
	wantRefused(t, "an image that does not decode", rewrap(t, testHeader(0), "", append(garbage, 1, 2, 3)), "does not decode")
}

// TestBackupReadError: a failing reader (an upload over its limit) is
// reported as itself, not as a bad file.
func TestBackupReadError(t *testing.T) {
	f, _ := backupState(t)
	file := encodeBackup(t, f)
	boom := errors.New("boom")
	for _, n := range []int{0, 5, 20, len(file) / 2, len(file) - 1} {
		r := io.MultiReader(bytes.NewReader(file[:n]), iotest.ErrReader(boom))
		_, err := ReadBackup(r)
		var be *BackupError
		if !errors.Is(err, boom) || errors.As(err, &be) {
			t.Errorf("error after %d bytes: got %v, want the reader's error", n, err)
		}
	}
}

func TestClusterIDs(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	a, err := clusterIDs("n1", k1, [][]byte{k2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := clusterIDs("n2", k2, nil)
	c, _ := clusterIDs("n3", k1, nil)
	if len(a) != 2 || a[1] != b[0] || a[0] != c[0] || a[0] == b[0] || len(a[0]) != 32 {
		t.Errorf("ids %v %v %v: want one per key, depending on the key alone", a, b, c)
	}
	ca, _ := deriveCA(k1)
	if !strings.HasSuffix(ca.cert.Subject.CommonName, a[0][:16]) {
		t.Errorf("id %s does not extend the CA's fingerprint in %q", a[0], ca.cert.Subject.CommonName)
	}
	if d, _ := clusterIDs("solo", nil, nil); len(d) != 1 || d[0] != "node:solo" {
		t.Errorf("keyless ids %v", d)
	}
}

// FuzzReadBackup: any input is refused or accepted, never a panic, and
// what is accepted re-encodes to a file that is accepted too. With wrap
// set the input is a body, given a valid header and checksum, so the
// fuzzer also reaches the image decoder behind the checksum.
func FuzzReadBackup(f *testing.F) {
	state, _ := backupState(f)
	file := encodeBackup(f, state)
	f.Add(false, file)
	f.Add(false, file[:len(file)/2])
	f.Add(false, []byte(backupMagic+"\x01\x00\x00\x00\x02{}"))
	f.Add(false, encodeBackup(f, fsm.New()))
	var img bytes.Buffer
	state.Snapshot().WriteTo(&img)
	f.Add(true, img.Bytes())
	f.Fuzz(func(t *testing.T, wrap bool, data []byte) {
		if wrap {
			if len(data) == 0 {
				return
			}
			var out bytes.Buffer
			if _, err := WriteBackup(&out, testHeader(int64(len(data))), bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			data = out.Bytes()
		}
		b, err := ReadBackup(bytes.NewReader(data))
		if err != nil {
			var be *BackupError
			if !errors.As(err, &be) {
				t.Fatalf("a bad file is not a BackupError: %v", err)
			}
			return
		}
		var img bytes.Buffer
		if _, err := b.State.Snapshot().WriteTo(&img); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		h := b.Header
		h.BodyBytes = int64(img.Len())
		if _, err := WriteBackup(&out, h, &img); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadBackup(&out); err != nil {
			t.Fatalf("re-encoded backup refused: %v", err)
		}
	})
}

// TestBackupSingleNode: a backup taken from a node restores on it: writes
// after the backup are undone, revocations after it too; a corrupted file
// or another cluster's (without force) changes nothing; and the restored
// state, and writes after it, survive a restart.
func TestBackupSingleNode(t *testing.T) {
	dir := t.TempDir()
	cfg := newTestCfg(t, "n1", dir, nil)
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n.ClusterID() != "node:n1" {
		t.Fatalf("cluster id %q", n.ClusterID())
	}
	mustApply(t, n.Node, putClientCmd("c1"))
	before := []string{token(), token(), token()}
	for _, tok := range before {
		mustApply(t, n.Node, issueCmd("c1", tok))
	}
	rc, size, err := n.OpenSnapshot(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	file, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(file)) != size {
		t.Fatalf("read %d bytes of %d: %v", len(file), size, err)
	}
	saved, err := ReadBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Header.ClusterID != "node:n1" || saved.Header.NodeID != "n1" || saved.Header.Index < saved.ImageIndex || saved.Header.Term == 0 {
		t.Fatalf("header %+v, image index %d", saved.Header, saved.ImageIndex)
	}
	for _, tok := range before {
		if _, ok := saved.State.Lookup(fsm.HashOf(tok), time.Now().UnixNano()); !ok {
			t.Fatal("a token acknowledged before the backup is not in it")
		}
	}

	after := token()
	mustApply(t, n.Node, issueCmd("c1", after))
	mustApply(t, n.Node, revokeCmd(before[0]))
	mustApply(t, n.Node, putClientCmd("c2"))

	// Refusals change nothing.
	bad := bytes.Clone(file)
	bad[len(bad)/2] ^= 1
	var be *BackupError
	if _, err := n.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(bad), true); !errors.As(err, &be) || be.Code != "invalid_snapshot" {
		t.Fatalf("corrupted file: %v", err)
	}
	var img bytes.Buffer
	saved.State.Snapshot().WriteTo(&img)
	h := saved.Header
	h.ClusterID = "another-cluster"
	foreign := rewrap(t, h, "", img.Bytes())
	if _, err := n.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(foreign), false); !errors.As(err, &be) || be.Code != "cluster_mismatch" {
		t.Fatalf("another cluster's backup without force: %v", err)
	}
	if !valid(cfg.FSM, after) || valid(cfg.FSM, before[0]) || len(cfg.FSM.Clients()) != 2 {
		t.Fatal("a refused restore changed the state")
	}

	res, err := n.RestoreBackup(ctxT(t, 60*time.Second), bytes.NewReader(file), false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Restored || res.Forced || res.SnapshotIndex != saved.Header.Index || res.AppliedIndex <= saved.Header.Index || res.Clients != 1 {
		t.Fatalf("restore result %+v", res)
	}
	checkRestored := func(when string) {
		t.Helper()
		for _, tok := range before {
			if !valid(cfg.FSM, tok) {
				t.Fatalf("%s: a token of the backup is not valid (revoked after it: %v)", when, tok == before[0])
			}
		}
		if valid(cfg.FSM, after) {
			t.Fatalf("%s: a token issued after the backup is valid", when)
		}
		if len(cfg.FSM.Clients()) != 1 {
			t.Fatalf("%s: %d clients, want the backup's 1", when, len(cfg.FSM.Clients()))
		}
	}
	checkRestored("after restore")
	next := token()
	if r := mustApply(t, n.Node, issueCmd("c1", next)); r.GrantID <= res.SnapshotIndex {
		t.Fatalf("a grant after the restore has id %d, not past the backup's index %d", r.GrantID, res.SnapshotIndex)
	}

	if res, err := n.RestoreBackup(ctxT(t, 60*time.Second), bytes.NewReader(foreign), true); err != nil || !res.Forced {
		t.Fatalf("forced restore: %+v, %v", res, err)
	}
	if valid(cfg.FSM, next) || !valid(cfg.FSM, before[0]) {
		t.Fatal("the forced restore did not restore")
	}
	last := token()
	mustApply(t, n.Node, issueCmd("c1", last))

	n.stop(t)
	cfg.FSM = fsm.New()
	n = startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !valid(cfg.FSM, last) || valid(cfg.FSM, next) || !valid(cfg.FSM, before[0]) || valid(cfg.FSM, after) {
		t.Fatal("the restored state, or a write after it, did not survive a restart")
	}
}
