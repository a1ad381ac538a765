package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/keys"
)

// privateForms returns the ways a private key's bytes could appear: PKCS#8
// DER and PEM, SEC1 (EC) or PKCS#1 (RSA) DER and PEM, and the raw secret
// numbers (EC scalar, Ed25519 seed and whole private key, RSA private
// exponent and primes), each also base64, base64url (a JWK's "d") and hex.
func privateForms(t *testing.T, k fsm.SigningKey, pkcs8 []byte) map[string][]byte {
	t.Helper()
	forms := map[string][]byte{
		"PKCS#8 DER": pkcs8,
		"PKCS#8 PEM": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}
	raw := map[string][]byte{}
	priv, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		t.Fatalf("key %s: %v", k.ID, err)
	}
	switch priv := priv.(type) {
	case *ecdsa.PrivateKey:
		sec1, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		forms["SEC1 DER"] = sec1
		forms["SEC1 PEM"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
		raw["EC scalar"] = priv.D.FillBytes(make([]byte, 32))
	case *rsa.PrivateKey:
		pkcs1 := x509.MarshalPKCS1PrivateKey(priv)
		forms["PKCS#1 DER"] = pkcs1
		forms["PKCS#1 PEM"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1})
		raw["RSA d"] = priv.D.Bytes()
		raw["RSA p"] = priv.Primes[0].Bytes()
		raw["RSA q"] = priv.Primes[1].Bytes()
	case ed25519.PrivateKey:
		raw["Ed25519 seed"] = priv.Seed()
		raw["Ed25519 private key"] = []byte(priv)
	default:
		t.Fatalf("key %s: unexpected private key type %T", k.ID, priv)
	}
	for name, b := range raw {
		forms[name] = b
		forms[name+" base64"] = []byte(base64.StdEncoding.EncodeToString(b))
		forms[name+" base64url"] = []byte(base64.RawURLEncoding.EncodeToString(b))
		forms[name+" hex"] = []byte(hex.EncodeToString(b))
	}
	return forms
}

// TestSigningKeyMaterialNotOnDisk: after signing JWTs with every
// algorithm's keys made and rotated three times, and after Raft snapshots,
// no private signing key appears in any form in raft.db, the snapshots,
// the backups or anything the process and the CLI wrote; the key IDs and
// sealed keys do appear there, so the search reads the right bytes.
func TestSigningKeyMaterialNotOnDisk(t *testing.T) {
	rawKey := make([]byte, 32)
	_, _ = rand.Read(rawKey)
	clusterKey := base64.StdEncoding.EncodeToString(rawKey)
	p := startNode(t, "material", "--cluster-key", clusterKey, "--admin-token", testAdminToken,
		"--signing-algs", "ES256,RS256,EdDSA", "--log-level", "debug", "--snapshot-threshold", "16")
	(&testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}).waitReady(p)

	id, secret := keysJWTClient(t, p)
	var cli strings.Builder
	backupDir := t.TempDir()
	for round := range 4 {
		for range 5 {
			issueDefinite(t, p, id, secret)
		}
		if round == 1 || round == 3 { // a backup makes Raft take a snapshot
			cli.WriteString(snapshotCLI(t, p, true, "save", filepath.Join(backupDir, "backup"+string(rune('0'+round)))))
		}
		if round < 3 {
			_, out := keysCLI(t, p, "rotate")
			cli.WriteString(out)
		}
	}
	_, out := keysCLI(t, p, "list")
	cli.WriteString(out)
	p.terminate(t)

	state := readBackupT(t, filepath.Join(backupDir, "backup3")).State
	set, _ := state.SigningKeys()
	if len(set) != 3*2+3*3 {
		t.Fatalf("%d keys in the final backup, want 15 (3 algorithms: first keys and three rotations)", len(set))
	}
	sealer, err := keys.NewSealer(rawKey)
	if err != nil {
		t.Fatal(err)
	}

	haystacks := readFiles(t, p.dir, backupDir)
	files := len(haystacks)
	haystacks["process output"], haystacks["CLI output"] = []byte(p.out.String()), []byte(cli.String())
	var raftDB, snapshots []byte
	for path, b := range haystacks {
		switch {
		case filepath.Base(path) == "raft.db":
			raftDB = b
		case strings.Contains(path, string(filepath.Separator)+"snapshots"+string(filepath.Separator)) && filepath.Base(path) == "state.bin":
			snapshots = append(snapshots, b...)
		}
	}
	if len(raftDB) == 0 || len(snapshots) == 0 {
		t.Fatalf("searched %d files, raft.db %d bytes, snapshots %d bytes: want both", files, len(raftDB), len(snapshots))
	}

	for _, k := range set {
		// Controls: the sealed key is in the backup, and the key ID in
		// the log or a snapshot, so the search sees where keys live.
		if !bytes.Contains(haystacks[filepath.Join(backupDir, "backup3")], k.Sealed) {
			t.Fatalf("control: sealed key %s not found in the backup it came from", k.ID)
		}
		if !bytes.Contains(raftDB, []byte(k.ID)) && !bytes.Contains(snapshots, []byte(k.ID)) {
			t.Fatalf("control: key ID %s neither in raft.db nor in a snapshot", k.ID)
		}
		pkcs8, err := sealer.Open(k.ID, k.Alg, k.Sealed)
		if err != nil {
			t.Fatalf("%s key %s does not open with the cluster key: %v", k.State, k.ID, err)
		}
		for form, needle := range privateForms(t, k, pkcs8) {
			for where, hay := range haystacks {
				if bytes.Contains(hay, needle) {
					t.Errorf("%s %s key %s: its private key (%s) is in %s", k.State, k.Alg, k.ID, form, where)
				}
			}
		}
	}
	t.Logf("%d keys, %d files (raft.db %d bytes, snapshots %d bytes), %d bytes of process output: no private key material",
		len(set), files, len(raftDB), len(snapshots), len(haystacks["process output"]))
}

// readFiles returns the contents of every regular file under dirs, by
// path.
func readFiles(t *testing.T, dirs ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			out[path], err = os.ReadFile(path)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
