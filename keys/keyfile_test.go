package keys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", KeyFileName)
	first, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 32 {
		t.Fatalf("secret is %d bytes", len(first))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	second, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("second load: %v (same secret: %v)", err, bytes.Equal(first, second))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want the key file alone (no temporary files left)", len(entries))
	}
}

func TestKeyFileRefusesWrongSizeOrLooseMode(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path, want string
	}{
		{"short", write("short", make([]byte, 31), 0o600), "holds 31 bytes"},
		{"long", write("long", make([]byte, 33), 0o600), "holds 33 bytes"},
		{"empty", write("empty", nil, 0o600), "holds 0 bytes"},
		{"group readable", write("group", make([]byte, 32), 0o640), "mode 0640"},
		{"other readable", write("other", make([]byte, 32), 0o604), "mode 0604"},
	}
	for _, c := range cases {
		before, _ := os.ReadFile(c.path)
		_, err := LoadOrCreateKeyFile(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
		after, _ := os.ReadFile(c.path)
		if !bytes.Equal(before, after) {
			t.Errorf("%s: the refused file was changed", c.name)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(filepath.Join(dir, "adir")); err == nil {
		t.Error("a directory was accepted as the key file")
	}
}
