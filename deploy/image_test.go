package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
	"github.com/tokend/tokend/internal/syncbuf"
)

// imageDeadline bounds each wait of the image test.
const imageDeadline = 60 * time.Second

// TestImage builds the offline image the way `make image` does
// (deploy/image.sh: static binaries from this tree, FROM scratch, podman)
// and checks it as a container runtime would see it: its configuration,
// its file system, and its tokend binary running on this host. Where
// containers can run, it also runs the image as a container.
func TestImage(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (apt-get install podman; .ci/run installs it): the offline image is not built or checked")
	}
	flags := serveFlags(t) // also fails early if this tree does not build
	tag := fmt.Sprintf("localhost/tokend-deploy-test:%d-%d", os.Getpid(), time.Now().UnixNano())
	const version = "deploy-test"

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Under the strictest umask: the image must not depend on the
	// caller's.
	build := exec.CommandContext(ctx, "bash", "-c", "umask 077 && exec bash image.sh")
	build.Env = append(os.Environ(), "IMAGE="+tag, "VERSION="+version, "ENGINE="+podman)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(podman, "rmi", "--force", tag).CombinedOutput(); err != nil {
			t.Logf("podman rmi %s: %v\n%s", tag, err, out)
		}
	})

	t.Run("config", func(t *testing.T) {
		out, err := exec.Command(podman, "image", "inspect", "--format", "{{json .Config}}", tag).Output()
		if err != nil {
			t.Fatalf("podman image inspect: %v", err)
		}
		var cfg struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
			Env          []string
			Labels       map[string]string
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if cfg.User != "65532:65532" {
			t.Errorf("User %q, want 65532:65532", cfg.User)
		}
		if !slices.Equal(cfg.Entrypoint, []string{"/usr/local/bin/tokend"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) {
			t.Errorf("Entrypoint %q Cmd %q", cfg.Entrypoint, cfg.Cmd)
		}
		if got, want := sortedKeys(cfg.ExposedPorts), expectedExpose(flags); !slices.Equal(got, want) {
			t.Errorf("ExposedPorts %q, want %q (not the admin port)", got, want)
		}
		if got := sortedKeys(cfg.Volumes); !slices.Equal(got, []string{"/data"}) {
			t.Errorf("Volumes %q, want [/data]", got)
		}
		if !slices.Contains(cfg.Env, "TOKEND_DATA_DIR=/data") {
			t.Errorf("Env %q lacks TOKEND_DATA_DIR=/data", cfg.Env)
		}
		if cfg.Labels["org.opencontainers.image.version"] != version {
			t.Errorf("version label %q, want %q", cfg.Labels["org.opencontainers.image.version"], version)
		}
	})

	// The file system, as `podman export` of a created (never started)
	// container gives it.
	files := exportImage(t, podman, tag)
	bin := filepath.Join(t.TempDir(), "tokend")
	hostBundle, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err) // image.sh copied it
	}
	t.Run("filesystem", func(t *testing.T) {
		noProblems(t, imageFSProblems(files, hostBundle))
	})
	// The same checks catch a broken image.
	t.Run("filesystem broken", func(t *testing.T) {
		// A plain go build with cgo on has an ELF interpreter; without a
		// C compiler it is static too, and that case is left out.
		dynamic, err := os.ReadFile(tokendBin(t))
		if err != nil {
			t.Fatal(err)
		}
		if !hasInterp(dynamic) {
			dynamic = nil
		}
		for _, tc := range []struct {
			want   string
			change func(map[string]imageFile)
		}{
			{"/data: mode", func(f map[string]imageFile) { f["data"].hdr.Mode = 0o755 }},
			{"/data: owner 0:0", func(f map[string]imageFile) { f["data"].hdr.Uid, f["data"].hdr.Gid = 0, 0 }},
			{"/etc/passwd has no entry for uid 65532", func(f map[string]imageFile) {
				f["etc/passwd"] = imageFile{f["etc/passwd"].hdr, []byte("root:x:0:0:root:/root:/sbin/nologin\n")}
			}},
			{"holds no certificates", func(f map[string]imageFile) {
				b := "etc/ssl/certs/ca-certificates.crt"
				f[b] = imageFile{f[b].hdr, []byte("not a certificate")}
			}},
			{"/usr/local/bin/tokend: owned by 65532", func(f map[string]imageFile) { f["usr/local/bin/tokend"].hdr.Uid = 65532 }},
			{"/etc/ssl: mode drwx------", func(f map[string]imageFile) { f["etc/ssl"].hdr.Mode = 0o700 }},
			{"/etc/passwd: mode -rw-------", func(f map[string]imageFile) { f["etc/passwd"].hdr.Mode = 0o600 }},
			{"unexpected file in the image: /etc/tokend/admin-token", func(f map[string]imageFile) {
				f["etc/tokend/admin-token"] = imageFile{&tar.Header{Name: "etc/tokend/admin-token", Typeflag: tar.TypeReg, Size: 43, Mode: 0o600}, nil}
			}},
			{"/usr/local/bin/tokend is dynamically linked", func(f map[string]imageFile) {
				f["usr/local/bin/tokend"] = imageFile{f["usr/local/bin/tokend"].hdr, dynamic}
			}},
		} {
			if strings.Contains(tc.want, "dynamically") && dynamic == nil {
				t.Log("no dynamically linked tokend to try (no cgo here)")
				continue
			}
			bad := map[string]imageFile{}
			for k, v := range files {
				h := *v.hdr
				bad[k] = imageFile{&h, v.data}
			}
			tc.change(bad)
			wantProblem(t, imageFSProblems(bad, hostBundle), tc.want)
		}
	})
	tokend, ok := files["usr/local/bin/tokend"]
	if !ok {
		t.Fatal("no /usr/local/bin/tokend in the image")
	}
	if err := os.WriteFile(bin, tokend.data, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("binary on the host", func(t *testing.T) {
		out, err := exec.Command(bin, "version").Output()
		if err != nil || strings.TrimSpace(string(out)) != "tokend "+version {
			t.Fatalf("tokend version: %q, %v", out, err)
		}
		addr, err := loopaddr.Free()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", "--node-id", "image-test", "--data-dir", t.TempDir(), "--http-addr", addr)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()} // no TOKEND_* from the test's environment
		runUntilReady(t, cmd, "http://"+addr)
	})

	t.Run("container", func(t *testing.T) {
		runContainer(t, podman, tag, version)
	})
}

type imageFile struct {
	hdr  *tar.Header
	data []byte
}

// exportImage returns the files of the image: `podman create` (which runs
// nothing) and `podman export`.
func exportImage(t *testing.T, podman, tag string) map[string]imageFile {
	t.Helper()
	// --image-volume ignore: no anonymous volume for /data to clean up.
	out, err := exec.Command(podman, "create", "--image-volume", "ignore", tag).Output()
	if err != nil {
		t.Fatalf("podman create: %v", err)
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command(podman, "rm", "--force", "--volumes", id).Run()
	export := exec.Command(podman, "export", id)
	var stderr bytes.Buffer
	export.Stderr = &stderr
	stdout, err := export.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := export.Start(); err != nil {
		t.Fatal(err)
	}
	files := map[string]imageFile{}
	tr := tar.NewReader(stdout)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading podman export: %v", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Clean("/"+hdr.Name), "/"), "/")
		f := imageFile{hdr: hdr}
		if hdr.Typeflag == tar.TypeReg {
			if f.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		files[name] = f
	}
	if err := export.Wait(); err != nil {
		t.Fatalf("podman export: %v\n%s", err, stderr.String())
	}
	return files
}

// imageFSProblems checks the image's files: the user, the CA bundle (the
// host's, hostBundle), /data, static binaries, and nothing else of
// substance.
func imageFSProblems(files map[string]imageFile, hostBundle []byte) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	mode := func(name string) fs.FileMode {
		f, ok := files[name]
		if !ok {
			add("/%s is missing", name)
			return 0
		}
		return f.hdr.FileInfo().Mode()
	}
	owner := func(name string) (int, int) {
		if f, ok := files[name]; ok {
			return f.hdr.Uid, f.hdr.Gid
		}
		return -1, -1
	}

	if !hasLine(files["etc/passwd"].data, func(f []string) bool { return len(f) == 7 && f[2] == "65532" && f[3] == "65532" }) {
		add("/etc/passwd has no entry for uid 65532:\n%s", files["etc/passwd"].data)
	}
	if !hasLine(files["etc/group"].data, func(f []string) bool { return len(f) == 4 && f[2] == "65532" }) {
		add("/etc/group has no entry for gid 65532:\n%s", files["etc/group"].data)
	}

	const bundle = "etc/ssl/certs/ca-certificates.crt"
	if !x509.NewCertPool().AppendCertsFromPEM(files[bundle].data) {
		add("/%s holds no certificates", bundle)
	}
	if hostBundle != nil && !bytes.Equal(hostBundle, files[bundle].data) {
		add("/%s differs from the host's", bundle)
	}

	if m := mode("data"); m != fs.ModeDir|0o700 {
		add("/data: mode %v, want drwx------", m)
	}
	if u, g := owner("data"); u != 65532 || g != 65532 {
		add("/data: owner %d:%d, want 65532:65532", u, g)
	}
	if m := mode("tmp"); m != fs.ModeDir|fs.ModeSticky|0o777 {
		add("/tmp: mode %v, want drwxrwxrwt", m)
	}
	for _, name := range []string{"usr/local/bin/tokend", "usr/local/bin/tokend-bench"} {
		if m := mode(name); m != 0o755 {
			add("/%s: mode %v, want -rwxr-xr-x", name, m)
		}
		if u, _ := owner(name); u != 0 {
			add("/%s: owned by %d, want root (not writable by the node)", name, u)
		}
		f, err := elf.NewFile(bytes.NewReader(files[name].data))
		if err != nil {
			add("/%s: %v", name, err)
			continue
		}
		f.Close()
		if hasInterp(files[name].data) {
			add("/%s is dynamically linked: FROM scratch has no loader", name)
		}
	}

	// Everything else is root's and readable by the node: directories
	// 0755, the user database and the CA bundle 0644.
	for _, name := range sortedKeys(files) {
		f := files[name]
		m := f.hdr.FileInfo().Mode()
		switch {
		case name == "data" || name == "tmp":
		case f.hdr.Typeflag == tar.TypeDir && m != fs.ModeDir|0o755:
			add("/%s: mode %v, want drwxr-xr-x", name, m)
		case slices.Contains([]string{"etc/passwd", "etc/group", bundle}, name) && m != 0o644:
			add("/%s: mode %v, want -rw-r--r--", name, m)
		}
		if name != "data" && (f.hdr.Uid != 0 || f.hdr.Gid != 0) {
			add("/%s: owner %d:%d, want root", name, f.hdr.Uid, f.hdr.Gid)
		}
	}

	// Nothing else with content: no build context, no secret, no shell.
	want := []string{"etc/passwd", "etc/group", bundle, "usr/local/bin/tokend", "usr/local/bin/tokend-bench"}
	for _, name := range sortedKeys(files) {
		f := files[name]
		if f.hdr.Typeflag == tar.TypeDir || slices.Contains(want, name) || f.hdr.Size == 0 {
			continue
		}
		add("unexpected file in the image: /%s (%d bytes)", name, f.hdr.Size)
	}
	return problems
}

// hasInterp says whether an ELF executable names a program interpreter
// (the dynamic loader).
func hasInterp(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer f.Close()
	return slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
}

// hasLine says whether a colon-separated file has a line whose fields
// satisfy ok.
func hasLine(data []byte, ok func([]string) bool) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if ok(strings.Split(sc.Text(), ":")) {
			return true
		}
	}
	return false
}

// runUntilReady starts cmd, waits for GET base/readyz to answer 200, then
// sends SIGTERM and expects a clean exit.
func runUntilReady(t *testing.T, cmd *exec.Cmd, base string) {
	t.Helper()
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-done
		}
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(imageDeadline)
	for ready := false; !ready; {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("exited before it was ready: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("%s/readyz: not 200 after %v\n%s", base, imageDeadline, out.String())
		case <-tick.C:
			if resp, err := client.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(imageDeadline):
		t.Fatalf("still running %v after SIGTERM\n%s", imageDeadline, out.String())
	}
}

// containerLimits are set on every container the test runs. podman's
// defaults (RLIMIT_NOFILE 1048576, RLIMIT_NPROC above what podman itself
// keeps) fail with EPERM where the runtime may not raise limits (no
// CAP_SYS_RESOURCE in a sandbox); lowering a limit always works.
var containerLimits = []string{"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}

// runContainer runs the image as a container: `tokend version`, then a
// single node with its HTTP port published on loopback and a fresh named
// volume on /data, ready, then stopped with SIGTERM.
//
// Some machines cannot run containers at all (this test's sandbox: cgroup v1
// with a cgroup2 hierarchy mounted at /sys/fs/cgroup/unified, which crun
// refuses as "hybrid mode"). There, as root, podman runs in a private mount
// namespace without that mount (unshare -m; the host's mounts are
// untouched); if containers still cannot run, the subtest is skipped with
// podman's error.
func runContainer(t *testing.T, podman, tag, version string) {
	type runner func(args ...string) *exec.Cmd
	plain := func(args ...string) *exec.Cmd { return exec.Command(podman, args...) }
	try := func(r runner) (string, error) {
		// --image-volume ignore: no anonymous volume for /data, which
		// podman keeps when the run fails.
		out, err := r(append(append([]string{"run", "--rm", "--image-volume", "ignore"}, containerLimits...), tag, "version")...).CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "tokend "+version {
			err = fmt.Errorf("unexpected output")
		}
		return string(out), err
	}
	run := plain
	out, err := try(plain)
	if err != nil {
		t.Logf("podman run: %v\n%s", err, out)
		unshare, uerr := exec.LookPath("unshare")
		if !cgroupHybrid() || os.Geteuid() != 0 || uerr != nil {
			t.Skipf("containers cannot run on this machine, so the image is checked without running it: podman run: %v\n%s", err, out)
		}
		run = func(args ...string) *exec.Cmd {
			sh := `umount /sys/fs/cgroup/unified && exec "$@"`
			return exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c", sh, "sh", podman}, args...)...)
		}
		if out, err = try(run); err != nil {
			t.Skipf("containers cannot run on this machine, even without the cgroup2 mount, so the image is checked without running it: podman run: %v\n%s", err, out)
		}
		t.Log("containers run here in a private mount namespace without /sys/fs/cgroup/unified (crun refuses cgroup hybrid mode)")
	}

	addr, err := loopaddr.Free()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	name := fmt.Sprintf("tokend-deploy-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	volume := name + "-data"
	t.Cleanup(func() {
		exec.Command(podman, "rm", "--force", "--ignore", name).Run()
		if out, err := exec.Command(podman, "volume", "rm", "--force", volume).CombinedOutput(); err != nil {
			t.Logf("podman volume rm %s: %v\n%s", volume, err, out)
		}
	})
	// The image's default CMD is serve; these arguments replace it. Its
	// user, data directory and volume are the image's own.
	args := append([]string{"run", "--rm", "--name", name}, containerLimits...)
	args = append(args, "--publish", "127.0.0.1:"+port+":8080", "--volume", volume+":/data", tag,
		"serve", "--node-id", "container-test", "--http-addr", "0.0.0.0:8080")
	runUntilReady(t, run(args...), "http://"+addr)

	// The node wrote its Raft data to the volume, as the image's user.
	out2, err := exec.Command(podman, "volume", "inspect", "--format", "{{.Mountpoint}}", volume).Output()
	if err != nil {
		t.Fatalf("podman volume inspect: %v", err)
	}
	dir := strings.TrimSpace(string(out2))
	var owned []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == 65532 {
				owned = append(owned, strings.TrimPrefix(p, dir))
			}
		}
		return nil
	})
	if len(owned) == 0 {
		t.Errorf("the node wrote no file owned by 65532 to its /data volume (%s)", dir)
	}
}

// cgroupHybrid says whether a cgroup2 hierarchy is mounted beside cgroup
// v1 controllers (systemd's "hybrid" layout).
func cgroupHybrid() bool {
	const cgroup2Magic = 0x63677270
	var st syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == cgroup2Magic
}
