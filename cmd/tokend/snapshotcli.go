package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// tokend snapshot save|inspect|restore: backups of the whole state through
// a node's admin API (cluster/backup.go has the file format and the
// consistency argument).

var _ httpapi.Snapshotter = (*cluster.Node)(nil)

const snapshotUsage = "usage: tokend snapshot save FILE | inspect FILE | restore FILE [--force]"

func snapshotCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New(snapshotUsage)
	}
	verb, args := args[0], args[1:]
	if !slices.Contains([]string{"save", "inspect", "restore"}, verb) {
		return fmt.Errorf("unknown command: tokend snapshot %s (%s)", verb, snapshotUsage)
	}
	fs := newFlagSet("tokend snapshot "+verb, stderr)
	var addr, token, tokenFile *string
	if verb != "inspect" {
		addr = fs.String("addr", "http://127.0.0.1:8080", "URL of a tokend node's admin surface: its --admin-addr when set, else its --http-addr")
		token = fs.String("admin-token", "", "admin bearer token"+argvWarning("admin-token-file"))
		tokenFile = fs.String("admin-token-file", "", "file holding the admin bearer token")
	}
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	force := fs.Bool("force", false, "restore: restore a backup of another cluster")
	if err := parseWithEnv(fs, args, "force"); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(snapshotUsage)
	}
	file := fs.Arg(0)
	if *force && verb != "restore" {
		return errors.New("--force is for tokend snapshot restore")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if verb == "inspect" {
		return inspectSnapshot(file, stdout)
	}
	api, err := snapshotClient(*addr, *token, *tokenFile)
	if err != nil {
		return err
	}
	if verb == "save" {
		return saveSnapshot(ctx, api, file, stdout)
	}
	return restoreSnapshot(ctx, api, file, *force, stdout)
}

func snapshotClient(addr, token, tokenFile string) (*adminClient, error) {
	if token != "" && tokenFile != "" {
		return nil, errors.New("give one of --admin-token and --admin-token-file, not both")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
		token = strings.TrimRightFunc(string(b), unicode.IsSpace)
	}
	if token == "" {
		return nil, errors.New("--admin-token-file or --admin-token (or TOKEND_ADMIN_TOKEN[_FILE]) is required")
	}
	// No client timeout: a backup streams for as long as it takes, within
	// --timeout.
	return &adminClient{base: strings.TrimRight(addr, "/"), token: token, http: &http.Client{}}, nil
}

// send makes one request with a streamed body and returns the response if
// it is a 200.
func (a *adminClient) send(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &statusError{status: resp.StatusCode, body: string(bytes.TrimSpace(data))}
	}
	return resp, nil
}

// saveSnapshot downloads a backup into a temporary file next to file,
// verifies it completely, and only then gives it its name (never
// replacing a file that exists).
func saveSnapshot(ctx context.Context, api *adminClient, file string, stdout io.Writer) (err error) {
	if _, err := os.Lstat(file); err == nil {
		return fmt.Errorf("%s exists; not overwriting it", file)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tokend-snapshot-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	resp, err := api.send(ctx, http.MethodGet, "/admin/snapshot", nil, 0)
	if err != nil {
		return err
	}
	n, err := io.Copy(tmp, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("download stopped after %d bytes: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	b, err := cluster.ReadBackup(bufio.NewReaderSize(tmp, 1<<20))
	if err != nil {
		return fmt.Errorf("the downloaded backup does not verify: %w", err)
	}
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; not overwriting it", file)
		}
		// A file system without hard links: rename, having checked above.
		if err := os.Rename(tmp.Name(), file); err != nil {
			return err
		}
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return printJSON(stdout, mustJSON(inspectView(file, b)))
}

func inspectSnapshot(file string, stdout io.Writer) error {
	b, err := readBackupFile(file)
	if err != nil {
		return err
	}
	return printJSON(stdout, mustJSON(inspectView(file, b)))
}

func readBackupFile(file string) (*cluster.Backup, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := cluster.ReadBackup(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}

// snapshotView is what inspect prints: the header, the verified checksum
// and counts. Never a secret, a hash or a user or client name.
type snapshotView struct {
	File          string    `json:"file"`
	Checksum      string    `json:"checksum"`
	SHA256        string    `json:"sha256"`
	ClusterID     string    `json:"cluster_id"`
	NodeID        string    `json:"node_id"`
	Index         uint64    `json:"index"`
	Term          uint64    `json:"term"`
	CreatedAt     time.Time `json:"created_at"`
	TokendVersion string    `json:"tokend_version,omitempty"`
	BodyBytes     int64     `json:"body_bytes"`
	ImageVersion  int       `json:"image_version"`
	ImageIndex    uint64    `json:"image_applied_index"`
	// LiveAt is the time the live counts are taken at: now.
	LiveAt time.Time `json:"live_at"`
	fsm.Stats
}

func inspectView(file string, b *cluster.Backup) snapshotView {
	now := time.Now().UTC().Truncate(time.Second)
	h := b.Header
	return snapshotView{
		File: file, Checksum: "ok", SHA256: hex.EncodeToString(b.Checksum[:]),
		ClusterID: h.ClusterID, NodeID: h.NodeID, Index: h.Index, Term: h.Term, CreatedAt: h.CreatedAt,
		TokendVersion: h.TokendVersion, BodyBytes: h.BodyBytes,
		ImageVersion: b.ImageVersion, ImageIndex: b.ImageIndex,
		LiveAt: now, Stats: b.Stats(now),
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// restoreSnapshot verifies file here first, so a damaged file is reported
// without a round trip, then uploads it; the node verifies it again.
func restoreSnapshot(ctx context.Context, api *adminClient, file string, force bool, stdout io.Writer) error {
	if _, err := readBackupFile(file); err != nil {
		return fmt.Errorf("not restoring: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	path := "/admin/snapshot/restore"
	if force {
		path += "?force=true"
	}
	resp, err := api.send(ctx, http.MethodPost, path, f, fi.Size())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return printJSON(stdout, data)
}
