package deploy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// imageStage is what a Dockerfile stage sets.
type imageStage struct {
	from       string
	env        map[string]string
	user       string
	expose     []string
	volumes    []string
	entrypoint []string
	cmd        []string
}

// parseContainerfile reads a Dockerfile/Containerfile: instructions,
// continuation lines, comments, global ARG defaults (substituted into
// FROM).
func parseContainerfile(text string) ([]imageStage, error) {
	var lines []string
	cur := ""
	for _, raw := range strings.Split(text, "\n") {
		l := strings.TrimSpace(raw)
		if strings.HasPrefix(l, "#") || (l == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	args := map[string]string{}
	var stages []imageStage
	subst := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			ref := strings.Fields(rest)[0]
			ref = subst.ReplaceAllStringFunc(ref, func(m string) string {
				return args[subst.FindStringSubmatch(m)[1]]
			})
			stages = append(stages, imageStage{from: ref, env: map[string]string{}})
			continue
		}
		if len(stages) == 0 {
			if instr == "ARG" {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = v
			}
			continue
		}
		s := &stages[len(stages)-1]
		switch instr {
		case "ENV":
			ws := unitWords(rest)
			if len(ws) == 2 && !strings.Contains(ws[0], "=") {
				s.env[ws[0]] = ws[1]
				break
			}
			for _, w := range ws {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					return nil, fmt.Errorf("ENV %s: %q is not NAME=VALUE", rest, w)
				}
				s.env[k] = v
			}
		case "USER":
			s.user = rest
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				s.expose = append(s.expose, strings.ToLower(p))
			}
		case "VOLUME":
			var vs []string
			if json.Unmarshal([]byte(rest), &vs) != nil {
				vs = strings.Fields(rest)
			}
			s.volumes = append(s.volumes, vs...)
		case "ENTRYPOINT", "CMD":
			var vs []string
			if err := json.Unmarshal([]byte(rest), &vs); err != nil {
				vs = []string{"/bin/sh", "-c", rest}
			}
			if instr == "ENTRYPOINT" {
				s.entrypoint = vs
			} else {
				s.cmd = vs
			}
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// expectedExpose is what an image should EXPOSE: the default HTTP,
// internal and gossip ports (gossip on TCP and UDP), not the admin port.
func expectedExpose(fs flagSet) []string {
	var out []string
	for _, x := range []struct{ flag, proto string }{{"http-addr", "tcp"}, {"raft-addr", "tcp"}, {"gossip-addr", "tcp"}, {"gossip-addr", "udp"}} {
		if _, p, err := addrPort(fs[x.flag].def); err == nil {
			out = append(out, strconv.Itoa(p)+"/"+x.proto)
		}
	}
	slices.Sort(out)
	return out
}

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// checkImageFile checks a Dockerfile or Containerfile: the final stage
// runs tokend as uid 65532, exposes the default listeners (not admin), and
// keeps its data directory on a volume; base images are pinned by digest,
// or by exact version with written instructions to pin the digest.
func checkImageFile(name, text, goVersion string, fs flagSet) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, name+": "+fmt.Sprintf(format, a...)) }
	stages, err := parseContainerfile(text)
	if err != nil {
		return []string{name + ": " + err.Error()}
	}
	for _, s := range stages {
		ref := s.from
		if ref == "scratch" {
			continue
		}
		pinned := digestRef.MatchString(ref)
		named, _, _ := strings.Cut(ref, "@")
		repo, tag, _ := strings.Cut(named[strings.LastIndex(named, "/")+1:], ":")
		switch {
		case tag == "" || tag == "latest":
			add("FROM %s: no version at all; pin a digest", ref)
			continue
		case repo == "golang" && tag != goVersion && !strings.HasPrefix(tag, goVersion+"-"):
			add("FROM %s: go.mod says go %s", ref, goVersion)
		}
		if !pinned && !strings.Contains(text, "docker buildx imagetools inspect "+ref) {
			add("FROM %s is not pinned by digest and the file does not say how to pin it (docker buildx imagetools inspect %s)", ref, ref)
		}
	}
	final := stages[len(stages)-1]
	if final.user != "65532" && final.user != "65532:65532" {
		add("USER %q: want the numeric nonroot user 65532 (Kubernetes' runAsNonRoot can only verify a numeric user)", final.user)
	}
	if want := expectedExpose(fs); !slices.Equal(sortedCopy(final.expose), want) {
		add("EXPOSE %s, want %s (the default HTTP, internal and gossip ports, not admin)", strings.Join(final.expose, " "), strings.Join(want, " "))
	}
	if !slices.Equal(final.entrypoint, []string{"/usr/local/bin/tokend"}) || !slices.Equal(final.cmd, []string{"serve"}) {
		add("ENTRYPOINT %q CMD %q, want [/usr/local/bin/tokend] [serve]", final.entrypoint, final.cmd)
	}
	dataDir := final.env[envName("data-dir")]
	if dataDir == "" || !slices.Contains(final.volumes, dataDir) {
		add("ENV TOKEND_DATA_DIR=%q and VOLUME %q: the data directory must be a volume", dataDir, final.volumes)
	}
	return problems
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// goVersion reads the go directive of ../go.mod.
func goVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepoFile(t, "../go.mod"))
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	return m[1]
}

// imageEnv is the environment the offline image sets (ENV in
// Containerfile), which the manifests inherit.
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	stages, err := parseContainerfile(readRepoFile(t, "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return stages[len(stages)-1].env
}

// TestImageFiles checks deploy/Dockerfile and deploy/Containerfile, and
// that they build the same image.
func TestImageFiles(t *testing.T) {
	fs := serveFlags(t)
	gv := goVersion(t)
	docker, container := readRepoFile(t, "Dockerfile"), readRepoFile(t, "Containerfile")
	noProblems(t, checkImageFile("Dockerfile", docker, gv, fs))
	noProblems(t, checkImageFile("Containerfile", container, gv, fs))
	d, _ := parseContainerfile(docker)
	c, _ := parseContainerfile(container)
	df, cf := d[len(d)-1], c[len(c)-1]
	for k, v := range df.env {
		if cf.env[k] != v {
			t.Errorf("ENV %s: Dockerfile %q, Containerfile %q", k, v, cf.env[k])
		}
	}
	if df.user != cf.user || !slices.Equal(sortedCopy(df.expose), sortedCopy(cf.expose)) || !slices.Equal(df.volumes, cf.volumes) {
		t.Errorf("the images differ: Dockerfile %+v, Containerfile %+v", df, cf)
	}
	if c[0].from != "scratch" || len(c) != 1 {
		t.Errorf("Containerfile: FROM %s; the offline image must build FROM scratch alone (nothing to pull)", c[0].from)
	}
}

func TestImageFilesBroken(t *testing.T) {
	fs := serveFlags(t)
	gv := goVersion(t)
	docker := readRepoFile(t, "Dockerfile")
	for _, tc := range []struct{ name, old, new, want string }{
		{"admin exposed", "EXPOSE 8080/tcp 8300/tcp 8301/tcp 8301/udp", "EXPOSE 8080/tcp 8300/tcp 8301/tcp 8301/udp 8400", "EXPOSE"},
		{"gossip udp missing", "EXPOSE 8080/tcp 8300/tcp 8301/tcp 8301/udp", "EXPOSE 8080 8300 8301", "want 8080/tcp 8300/tcp 8301/tcp 8301/udp"},
		{"named user", "USER 65532:65532", "USER nonroot", `USER "nonroot"`},
		{"shell entrypoint", `ENTRYPOINT ["/usr/local/bin/tokend"]`, `ENTRYPOINT /usr/local/bin/tokend`, "ENTRYPOINT"},
		{"no volume", "VOLUME /data", "", "the data directory must be a volume"},
		{"golang off go.mod", "ARG GO_IMAGE=golang:" + gv, "ARG GO_IMAGE=golang:1.20.1", "go.mod says go " + gv},
		{"golang latest", "ARG GO_IMAGE=golang:" + gv, "ARG GO_IMAGE=golang:latest", "no version at all"},
		{"base without digest or instructions", "ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639", "ARG BASE_IMAGE=gcr.io/distroless/static-debian13:nonroot", "not pinned by digest and the file does not say how"},
		{"golang digest on the wrong version", "ARG GO_IMAGE=golang:" + gv + "@", "ARG GO_IMAGE=golang:1.20.1@", "go.mod says go " + gv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, checkImageFile("Dockerfile", mutate(t, docker, tc.old, tc.new), gv, fs), tc.want)
		})
	}
	// A digest needs no instructions.
	pinned := mutate(t, docker, "ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639", "ARG BASE_IMAGE=gcr.io/distroless/static-debian13:nonroot@sha256:"+strings.Repeat("ab", 32))
	noProblems(t, checkImageFile("Dockerfile", pinned, gv, fs))
}
