package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The parts of Kubernetes objects the checks read.

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct {
		Name   string
		Labels map[string]string
	}
	Spec       yaml.Node
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	source     string
}

// intOrString is a Kubernetes IntOrString (a port number or name, a count
// or a percentage).
type intOrString struct {
	str string
	num int
	set bool
}

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	v.set = true
	if n.Tag == "!!int" {
		return n.Decode(&v.num)
	}
	return n.Decode(&v.str)
}

func (v intOrString) String() string {
	if v.str != "" {
		return v.str
	}
	return strconv.Itoa(v.num)
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

// selects says whether the selector picks pods labelled labels. An empty
// selector selects every pod; match expressions are not evaluated.
func (s labelSelector) selects(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type k8sService struct {
	ClusterIP                string `yaml:"clusterIP"`
	Type                     string
	PublishNotReadyAddresses bool `yaml:"publishNotReadyAddresses"`
	Selector                 map[string]string
	Ports                    []struct {
		Name       string
		Port       int
		TargetPort intOrString `yaml:"targetPort"`
		Protocol   string
	}
}

type k8sStatefulSet struct {
	Replicas    *int
	ServiceName string `yaml:"serviceName"`
	Selector    labelSelector
	Template    struct {
		Metadata struct{ Labels map[string]string }
		Spec     k8sPodSpec
	}
	VolumeClaimTemplates []struct {
		Metadata struct{ Name string }
	} `yaml:"volumeClaimTemplates"`
}

type k8sPodSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []k8sContainer
	Volumes    []struct {
		Name   string
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct{ Key, Path string }
		}
		Projected *struct {
			Sources []struct {
				Secret *struct {
					Name  string
					Items []struct{ Key, Path string }
				}
			}
		}
	}
}

type k8sProbe struct {
	HTTPGet *struct {
		Path   string
		Port   intOrString
		Scheme string
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	Env     []struct {
		Name      string
		Value     *string
		ValueFrom any `yaml:"valueFrom"`
	}
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
		Protocol      string
	}
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	StartupProbe    *k8sProbe `yaml:"startupProbe"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type k8sNetworkPolicy struct {
	PodSelector labelSelector `yaml:"podSelector"`
	PolicyTypes []string      `yaml:"policyTypes"`
	Ingress     []struct {
		From []struct {
			PodSelector       *labelSelector `yaml:"podSelector"`
			NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
			IPBlock           any            `yaml:"ipBlock"`
		}
		Ports []struct {
			Port     *intOrString
			EndPort  *int `yaml:"endPort"`
			Protocol string
		}
	}
}

type k8sPDB struct {
	MinAvailable   *intOrString `yaml:"minAvailable"`
	MaxUnavailable *intOrString `yaml:"maxUnavailable"`
	Selector       labelSelector
}

// parseKubernetes reads the objects of YAML documents; source names the
// file in problems.
func parseKubernetes(source, text string) ([]k8sObject, error) {
	var objs []k8sObject
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if o.Kind == "" {
			continue
		}
		o.source = source
		objs = append(objs, o)
	}
}

func decodeSpec[T any](o k8sObject) (T, error) {
	var spec T
	if err := o.Spec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("%s: %s %s: %w", o.source, o.Kind, o.Metadata.Name, err)
	}
	return spec, nil
}

// containerPort is a port the pod declares.
type containerPort struct {
	port  int
	proto string
}

func (p containerPort) String() string { return fmt.Sprintf("%d/%s", p.port, p.proto) }

func protoOr(p string) string {
	if p == "" {
		return "TCP"
	}
	return strings.ToUpper(p)
}

// runsServe says whether a container runs `tokend serve`: the tokend image,
// no other command, and serve (or nothing, the image's CMD) as its first
// argument.
func runsServe(c k8sContainer) bool {
	if !strings.Contains(c.Image, "tokend") {
		return false
	}
	args := c.Args
	if len(c.Command) > 0 {
		if filepath.Base(c.Command[0]) != "tokend" {
			return false
		}
		args = append(slices.Clone(c.Command[1:]), args...)
	}
	return len(args) == 0 || args[0] == "serve"
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkKubernetes checks the objects of the Kubernetes manifests: the
// StatefulSet running tokend serve against the flags, and the Services,
// NetworkPolicies and PodDisruptionBudget around it against the
// StatefulSet. imageEnv is what the image's ENV sets.
func checkKubernetes(objs []k8sObject, fs flagSet, imageEnv map[string]string) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	var (
		stsObj      *k8sObject
		sts         k8sStatefulSet
		services    = map[string]k8sService{}
		serviceList []string
		policies    = map[string]k8sNetworkPolicy{}
		pdbs        = map[string]k8sPDB{}
	)
	for i := range objs {
		o := objs[i]
		where := fmt.Sprintf("%s: %s %s", o.source, o.Kind, o.Metadata.Name)
		var err error
		switch o.Kind {
		case "Secret":
			if len(o.Data) > 0 || len(o.StringData) > 0 {
				add("%s holds secret values in the manifest; create it from files (kubectl create secret generic --from-file)", where)
			}
		case "Service":
			var s k8sService
			if s, err = decodeSpec[k8sService](o); err == nil {
				services[o.Metadata.Name] = s
				serviceList = append(serviceList, o.Metadata.Name)
			}
		case "NetworkPolicy":
			var p k8sNetworkPolicy
			if p, err = decodeSpec[k8sNetworkPolicy](o); err == nil {
				policies[o.Metadata.Name] = p
			}
		case "PodDisruptionBudget":
			var p k8sPDB
			if p, err = decodeSpec[k8sPDB](o); err == nil {
				pdbs[o.Metadata.Name] = p
			}
		case "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet":
			var s k8sStatefulSet
			if s, err = decodeSpec[k8sStatefulSet](o); err != nil {
				break
			}
			for _, c := range s.Template.Spec.Containers {
				if !runsServe(c) {
					continue
				}
				switch {
				case o.Kind != "StatefulSet":
					add("%s runs tokend serve: nodes need stable names and their own volumes, so use a StatefulSet", where)
				case stsObj != nil:
					add("%s: a second StatefulSet runs tokend serve (the checks expect one)", where)
				default:
					stsObj, sts = &objs[i], s
				}
			}
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if stsObj == nil {
		return append(problems, "no StatefulSet runs tokend serve")
	}
	where := fmt.Sprintf("%s: StatefulSet %s", stsObj.source, stsObj.Metadata.Name)
	pod := sts.Template.Spec
	podLabels := sts.Template.Metadata.Labels
	var c k8sContainer
	for _, x := range pod.Containers {
		if runsServe(x) {
			c = x
		}
	}
	replicas := 1
	if sts.Replicas != nil {
		replicas = *sts.Replicas
	}
	if len(sts.Selector.MatchLabels) == 0 || !sts.Selector.selects(podLabels) {
		add("%s: its selector does not select its own pod template's labels", where)
	}
	if replicas < 3 {
		add("%s: %d replicas; a cluster that survives losing a node needs at least 3", where, replicas)
	}

	// The node, as tokend sees it.
	n := &node{where: where + " container " + c.Name, env: map[string]string{}, refs: map[string]bool{}, imageEnv: imageEnv}
	n.args = c.Args
	if len(c.Command) > 0 {
		n.args = append(slices.Clone(c.Command[1:]), c.Args...)
	}
	if len(n.args) > 0 && n.args[0] == "serve" {
		n.args = n.args[1:]
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil:
			n.env[e.Name] = "$(" + e.Name + ")"
			n.refs[e.Name] = true
		case e.Value != nil:
			v := *e.Value
			for _, m := range k8sVarRef.FindAllStringSubmatch(v, -1) {
				if _, ok := n.env[m[1]]; !ok {
					add("%s: %s refers to $(%s), which is not defined before it", n.where, e.Name, m[1])
				}
			}
			n.env[e.Name] = v
		default:
			n.env[e.Name] = ""
		}
	}
	problems = append(problems, checkNode(n, fs)...)
	l, _ := n.listeners(fs)

	// Cluster size and peers.
	if be, _ := n.setting(fs, "bootstrap-expect"); be != strconv.Itoa(replicas) {
		add("%s: --bootstrap-expect %s, but %d replicas", n.where, be, replicas)
	}
	joinHost := regexp.MustCompile("^" + regexp.QuoteMeta(stsObj.Metadata.Name) + `-(\d+)\.` + regexp.QuoteMeta(sts.ServiceName) + `(\.|$)`)
	join, _ := n.setting(fs, "join")
	for _, j := range splitList(join) {
		host, port, err := addrPort(j)
		if err != nil {
			continue // reported by checkNode
		}
		if port != l.gossip {
			add("%s: --join %s: port %d, but gossip listens on %d", n.where, j, port, l.gossip)
		}
		m := joinHost.FindStringSubmatch(host)
		if m == nil {
			add("%s: --join %s: not a pod of this StatefulSet (want %s-N.%s)", n.where, j, stsObj.Metadata.Name, sts.ServiceName)
		} else if i, _ := strconv.Atoi(m[1]); i >= replicas {
			add("%s: --join %s: there are only %d replicas", n.where, j, replicas)
		}
	}
	if peers, ok := services[sts.ServiceName]; !ok {
		add("%s: serviceName %q: no such Service", where, sts.ServiceName)
	} else {
		if peers.ClusterIP != "None" {
			add("Service %s: the StatefulSet's governing Service must be headless (clusterIP: None) for per-pod DNS names", sts.ServiceName)
		}
		if !peers.PublishNotReadyAddresses {
			add("Service %s: publishNotReadyAddresses must be true: pods become ready only after they have found each other", sts.ServiceName)
		}
		if len(peers.Selector) == 0 || !(labelSelector{MatchLabels: peers.Selector}).selects(podLabels) {
			add("Service %s: its selector does not select the StatefulSet's pods", sts.ServiceName)
		}
	}

	// Listeners and containerPorts, both ways.
	type listener struct {
		flag string
		port containerPort
	}
	want := []listener{
		{"http-addr", containerPort{l.http, "TCP"}},
		{"raft-addr", containerPort{l.raft, "TCP"}},
		{"gossip-addr", containerPort{l.gossip, "TCP"}},
		{"gossip-addr", containerPort{l.gossip, "UDP"}},
	}
	if l.admin != 0 {
		want = append(want, listener{"admin-addr", containerPort{l.admin, "TCP"}})
	}
	declared := map[containerPort]bool{}
	byName := map[string]containerPort{}
	for _, p := range c.Ports {
		cp := containerPort{p.ContainerPort, protoOr(p.Protocol)}
		declared[cp] = true
		if p.Name != "" {
			byName[p.Name] = cp
		}
		if !slices.ContainsFunc(want, func(w listener) bool { return w.port == cp }) {
			add("%s: containerPort %s (%s) matches no listener of tokend serve", n.where, cp, p.Name)
		}
	}
	for _, w := range want {
		if !declared[w.port] {
			add("%s: --%s listens on %s, but no containerPort declares it", n.where, w.flag, w.port)
		}
	}
	// resolve turns a port number or name into a declared container port.
	resolve := func(p intOrString, proto string) (containerPort, bool) {
		if p.str != "" {
			cp, ok := byName[p.str]
			return cp, ok && cp.proto == proto
		}
		cp := containerPort{p.num, proto}
		return cp, declared[cp]
	}
	httpPort := containerPort{l.http, "TCP"}

	// Probes: /readyz and /healthz on the HTTP port.
	for _, pr := range []struct {
		kind  string
		probe *k8sProbe
		paths []string
		need  bool
	}{
		{"readinessProbe", c.ReadinessProbe, []string{"/readyz"}, true},
		{"livenessProbe", c.LivenessProbe, []string{"/healthz"}, true},
		{"startupProbe", c.StartupProbe, []string{"/healthz", "/readyz"}, false},
	} {
		switch {
		case pr.probe == nil:
			if pr.need {
				add("%s: no %s (want GET %s on the HTTP port)", n.where, pr.kind, pr.paths[0])
			}
		case pr.probe.HTTPGet == nil:
			add("%s: %s must be an httpGet of %s", n.where, pr.kind, pr.paths[0])
		default:
			g := pr.probe.HTTPGet
			if !slices.Contains(pr.paths, g.Path) {
				add("%s: %s GETs %q, want %s", n.where, pr.kind, g.Path, strings.Join(pr.paths, " or "))
			}
			if cp, ok := resolve(g.Port, "TCP"); !ok || cp != httpPort {
				add("%s: %s port %s is not the HTTP port (--http-addr, %d)", n.where, pr.kind, g.Port, l.http)
			}
			tlsCert, _ := n.setting(fs, "tls-cert")
			if scheme := strings.ToUpper(cmpOr(g.Scheme, "HTTP")); (tlsCert != "") != (scheme == "HTTPS") {
				add("%s: %s scheme %s does not match --tls-cert %q", n.where, pr.kind, scheme, tlsCert)
			}
		}
	}

	// Services: every port lands on a declared container port; only
	// headless Services (which forward nothing) may name the internal,
	// gossip and admin ports.
	for _, name := range serviceList {
		s := services[name]
		if len(s.Selector) == 0 || !(labelSelector{MatchLabels: s.Selector}).selects(podLabels) {
			continue
		}
		headless := s.ClusterIP == "None"
		for _, p := range s.Ports {
			target := p.TargetPort
			if !target.set {
				target = intOrString{num: p.Port, set: true}
			}
			cp, ok := resolve(target, protoOr(p.Protocol))
			if !ok {
				add("Service %s: port %s targets %s/%s, which the pod does not declare", name, cmpOr(p.Name, strconv.Itoa(p.Port)), target, protoOr(p.Protocol))
				continue
			}
			if !headless && cp != httpPort {
				add("Service %s publishes %s, which is not the OAuth port (%s): the internal, gossip and admin ports stay off client Services", name, cp, httpPort)
			}
		}
	}

	// NetworkPolicies: every listener reachable from the right peers only.
	var selecting []string
	for _, name := range sortedKeys(policies) {
		p := policies[name]
		if p.PodSelector.selects(podLabels) && (slices.Contains(p.PolicyTypes, "Ingress") || len(p.PolicyTypes) == 0) {
			selecting = append(selecting, name)
		}
	}
	if len(selecting) == 0 {
		add("no NetworkPolicy restricts ingress to the tokend pods: the internal, gossip and admin ports are open to the whole cluster")
	}
	tokendPeer := func(sel *labelSelector, ns *labelSelector, ipBlock any) bool {
		return sel != nil && len(sel.MatchLabels) > 0 && sel.selects(podLabels) && ns == nil && ipBlock == nil
	}
	allowed := map[listener][]string{} // listener -> what admits it
	for _, name := range selecting {
		for ri, r := range policies[name].Ingress {
			matches := func(cp containerPort) bool {
				if len(r.Ports) == 0 {
					return true
				}
				for _, pp := range r.Ports {
					if protoOr(pp.Protocol) != cp.proto {
						continue
					}
					if pp.Port == nil {
						return true
					}
					if pp.Port.str != "" {
						if byName[pp.Port.str] == cp {
							return true
						}
						continue
					}
					hi := pp.Port.num
					if pp.EndPort != nil {
						hi = *pp.EndPort
					}
					if cp.port >= pp.Port.num && cp.port <= hi {
						return true
					}
				}
				return false
			}
			for _, pp := range r.Ports {
				if pp.Port == nil {
					continue
				}
				if _, ok := resolve(*pp.Port, protoOr(pp.Protocol)); !ok && pp.EndPort == nil {
					add("NetworkPolicy %s: ingress rule %d admits %s/%s, which the pod does not declare", name, ri+1, pp.Port, protoOr(pp.Protocol))
				}
			}
			var from string
			switch {
			case len(r.From) == 0:
				from = "anywhere"
			default:
				from = "tokend pods"
				for _, f := range r.From {
					if !tokendPeer(f.PodSelector, f.NamespaceSelector, f.IPBlock) {
						from = "other sources"
					}
				}
			}
			for _, w := range want {
				if matches(w.port) {
					allowed[w] = append(allowed[w], from)
				}
			}
		}
	}
	if len(selecting) > 0 {
		for _, w := range want {
			froms := allowed[w]
			switch {
			case len(froms) == 0:
				add("NetworkPolicy: --%s (%s) is not admitted by any ingress rule", w.flag, w.port)
			case w.flag == "raft-addr" || w.flag == "gossip-addr":
				if slices.ContainsFunc(froms, func(f string) bool { return f != "tokend pods" }) {
					add("NetworkPolicy: --%s (%s) is admitted from %s; only the StatefulSet's own pods may reach it", w.flag, w.port, strings.Join(froms, ", "))
				}
			case w.flag == "admin-addr":
				if slices.Contains(froms, "anywhere") {
					add("NetworkPolicy: the admin port (%s) is admitted from anywhere", w.port)
				}
			}
		}
	}

	// The disruption budget keeps a quorum.
	quorum := replicas/2 + 1
	var budgets []string
	for _, name := range sortedKeys(pdbs) {
		if p := pdbs[name]; len(p.Selector.MatchLabels) > 0 && p.Selector.selects(podLabels) {
			budgets = append(budgets, name)
		}
	}
	if len(budgets) != 1 {
		add("want one PodDisruptionBudget for the StatefulSet's pods, found %d", len(budgets))
	}
	for _, name := range budgets {
		p := pdbs[name]
		switch {
		case (p.MinAvailable == nil) == (p.MaxUnavailable == nil):
			add("PodDisruptionBudget %s: set one of minAvailable and maxUnavailable", name)
		case p.MinAvailable != nil && p.MinAvailable.str != "", p.MaxUnavailable != nil && p.MaxUnavailable.str != "":
			add("PodDisruptionBudget %s: use a number of pods, not a percentage, so the quorum arithmetic is exact", name)
		case p.MinAvailable != nil && p.MinAvailable.num < quorum:
			add("PodDisruptionBudget %s: minAvailable %d lets an eviction break quorum (%d of %d)", name, p.MinAvailable.num, quorum, replicas)
		case p.MinAvailable != nil && p.MinAvailable.num >= replicas:
			add("PodDisruptionBudget %s: minAvailable %d allows no eviction at all (node drains hang)", name, p.MinAvailable.num)
		case p.MaxUnavailable != nil && p.MaxUnavailable.num > replicas-quorum:
			add("PodDisruptionBudget %s: maxUnavailable %d lets an eviction break quorum (%d of %d)", name, p.MaxUnavailable.num, quorum, replicas)
		case p.MaxUnavailable != nil && p.MaxUnavailable.num < 1:
			add("PodDisruptionBudget %s: maxUnavailable %d allows no eviction at all (node drains hang)", name, p.MaxUnavailable.num)
		}
	}

	// Secrets come from Secret volumes; the data directory is a claim.
	type mount struct{ dir, volume, subPath string }
	var mounts []mount
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, mount{m.MountPath, m.Name, m.SubPath})
	}
	volumeFor := func(path string) (mount, string, bool) {
		best, bestRel, found := mount{}, "", false
		for _, m := range mounts {
			if rel, ok := underDir(path, m.dir); ok && len(m.dir) >= len(best.dir) {
				best, bestRel, found = m, rel, true
			}
		}
		return best, bestRel, found
	}
	for _, flag := range fs.secretFileFlags() {
		path, set := n.setting(fs, flag)
		if !set || path == "" {
			continue
		}
		m, rel, ok := volumeFor(path)
		if !ok {
			add("%s: --%s %s is not on a mounted volume", n.where, flag, path)
			continue
		}
		isSecret := false
		var items []string
		for _, v := range pod.Volumes {
			if v.Name != m.volume {
				continue
			}
			if v.Secret != nil {
				isSecret = true
				for _, it := range v.Secret.Items {
					items = append(items, it.Path)
				}
			}
			if v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.Secret != nil {
						isSecret = true
						for _, it := range s.Secret.Items {
							items = append(items, it.Path)
						}
					}
				}
			}
		}
		switch {
		case !isSecret:
			add("%s: --%s %s is on volume %q, which is not a Secret", n.where, flag, path, m.volume)
		case m.subPath == "" && len(items) > 0 && !slices.Contains(items, rel):
			add("%s: --%s %s: the Secret volume %q has no item at %q", n.where, flag, path, m.volume, rel)
		}
	}
	dataDir, _ := n.setting(fs, "data-dir")
	if m, _, ok := volumeFor(dataDir); !ok || !slices.ContainsFunc(sts.VolumeClaimTemplates, func(v struct{ Metadata struct{ Name string } }) bool { return v.Metadata.Name == m.volume }) {
		add("%s: the data directory %q is not on a volumeClaimTemplate: a restarted pod would lose its Raft log", n.where, dataDir)
	}
	if !(isTrue(pod.SecurityContext.RunAsNonRoot) || isTrue(c.SecurityContext.RunAsNonRoot)) {
		add("%s: runAsNonRoot is not set", n.where)
	}
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		add("%s: allowPrivilegeEscalation must be false", n.where)
	}
	return problems
}

func isTrue(b *bool) bool { return b != nil && *b }

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// kubernetesObjects reads every deploy/kubernetes/*.yaml file.
func kubernetesObjects(t *testing.T, files map[string]string) []k8sObject {
	t.Helper()
	var objs []k8sObject
	for _, name := range sortedKeys(files) {
		o, err := parseKubernetes(name, files[name])
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	return objs
}

func kubernetesFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deploy/kubernetes/*.yaml: %v", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		files[p] = readRepoFile(t, p)
	}
	return files
}

// TestKubernetes checks deploy/kubernetes/*.yaml against tokend serve.
func TestKubernetes(t *testing.T) {
	fs := serveFlags(t)
	objs := kubernetesObjects(t, kubernetesFiles(t))
	noProblems(t, checkKubernetes(objs, fs, imageEnv(t)))
}

// TestKubernetesBroken breaks the manifest one way at a time; the checks
// must say what broke.
func TestKubernetesBroken(t *testing.T) {
	fs := serveFlags(t)
	const file = "kubernetes/tokend.yaml"
	good := readRepoFile(t, file)
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown variable", "name: TOKEND_COOKIE_SECURE,", "name: TOKEND_COOKIE_SECUR,", "TOKEND_COOKIE_SECUR is not read by tokend serve"},
		{"unknown flag", `args: ["serve"]`, `args: ["serve", "--http-address", "0.0.0.0:8080"]`, "unknown flag --http-address"},
		{"bad value", `name: TOKEND_BOOTSTRAP_EXPECT, value: "3"`, `name: TOKEND_BOOTSTRAP_EXPECT, value: "three"`, `TOKEND_BOOTSTRAP_EXPECT="three"`},
		{"no issuer", `- { name: TOKEND_ISSUER, value: "https://auth.example.com" }`, ``, "--issuer is required"},
		{"raft on 0.0.0.0", `value: "$(POD_IP):8300"`, `value: "0.0.0.0:8300"`, `--raft-addr "0.0.0.0:8300" is advertised`},
		{"undefined reference", `- { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }`, ``, "refers to $(POD_IP), which is not defined"},
		{"containerPort off", "{ name: internal, containerPort: 8300, protocol: TCP }", "{ name: internal, containerPort: 8310, protocol: TCP }", "--raft-addr listens on 8300/TCP, but no containerPort"},
		{"gossip UDP missing", "- { name: gossip-udp, containerPort: 8301, protocol: UDP }", "", "--gossip-addr listens on 8301/UDP"},
		{"readiness on healthz", "readinessProbe: { httpGet: { path: /readyz", "readinessProbe: { httpGet: { path: /healthz", `readinessProbe GETs "/healthz"`},
		{"liveness on admin", "livenessProbe: { httpGet: { path: /healthz, port: oauth }", "livenessProbe: { httpGet: { path: /healthz, port: admin }", "livenessProbe port admin is not the HTTP port"},
		{"no liveness", "livenessProbe: { httpGet: { path: /healthz, port: oauth }, periodSeconds: 10 }", "", "no livenessProbe"},
		{"client service publishes admin", "ports: [{ name: oauth, port: 80, targetPort: oauth, protocol: TCP }]", "ports: [{ name: oauth, port: 80, targetPort: admin, protocol: TCP }]", "Service tokend publishes 8400/TCP"},
		{"service targets nothing", "- { name: internal, port: 8300, protocol: TCP }", "- { name: internal, port: 8310, protocol: TCP }", "Service tokend-peers: port internal targets 8310/TCP"},
		{"peers not published before ready", "publishNotReadyAddresses: true", "publishNotReadyAddresses: false", "publishNotReadyAddresses must be true"},
		{"internal port open to a namespace", "- from: [{ podSelector: { matchLabels: { app: tokend } } }]", "- from: [{ namespaceSelector: {} }]", "--raft-addr (8300/TCP) is admitted from other sources"},
		{"gossip UDP blocked", "        - { port: 8301, protocol: UDP }\n    # Admin", "    # Admin", "--gossip-addr (8301/UDP) is not admitted"},
		{"admin open", `- from: [{ namespaceSelector: { matchLabels: { tokend.io/admin-access: "true" } } }]`, "-", "the admin port (8400/TCP) is admitted from anywhere"},
		{"stale policy port", "- ports: [{ port: 8080, protocol: TCP }]", "- ports: [{ port: 8080, protocol: TCP }, { port: 9090, protocol: TCP }]", "admits 9090/TCP, which the pod does not declare"},
		{"pdb too loose", "maxUnavailable: 1", "maxUnavailable: 2", "maxUnavailable 2 lets an eviction break quorum"},
		{"pdb blocks drains", "maxUnavailable: 1", "minAvailable: 3", "minAvailable 3 allows no eviction"},
		{"pdb percentage", "maxUnavailable: 1", `maxUnavailable: "34%"`, "not a percentage"},
		{"two replicas", "replicas: 3", "replicas: 2", "--bootstrap-expect 3, but 2 replicas"},
		{"join wrong port", "tokend-0.tokend-peers:8301,", "tokend-0.tokend-peers:8300,", "--join tokend-0.tokend-peers:8300: port 8300, but gossip listens on 8301"},
		{"join beyond replicas", "tokend-2.tokend-peers:8301", "tokend-3.tokend-peers:8301", "there are only 3 replicas"},
		{"key in the environment", "- { name: TOKEND_CLUSTER_KEY_FILE, value: /etc/tokend/secrets/cluster-key }", "- { name: TOKEND_CLUSTER_KEY, valueFrom: { secretKeyRef: { name: tokend-secrets, key: cluster-key } } }", "--cluster-key (TOKEND_CLUSTER_KEY) carries the secret itself"},
		{"literal token", "- { name: TOKEND_COOKIE_SECURE, value: \"true\" }", "- { name: TOKEND_COOKIE_SECURE, value: \"true\" }\n            - { name: TOKEND_ADMIN_TOKEN, value: \"Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=\" }", "looks like a key or token"},
		{"key file not on a secret", "value: /etc/tokend/secrets/cluster-key }", "value: /data/cluster-key }", `--cluster-key-file /data/cluster-key is on volume "data", which is not a Secret`},
		{"key file not mounted", "value: /etc/tokend/secrets/admin-token }", "value: /run/admin-token }", "--admin-token-file /run/admin-token is not on a mounted volume"},
		{"key file not an item", "value: /etc/tokend/secrets/admin-token }", "value: /etc/tokend/secrets/token }", `has no item at "token"`},
		{"data not persistent", "- { name: data, mountPath: /data }", "", `the data directory "/data" is not on a volumeClaimTemplate`},
		{"literal Secret", "apiVersion: policy/v1", "apiVersion: v1\nkind: Secret\nmetadata: { name: tokend-secrets }\nstringData: { admin-token: x }\n---\napiVersion: policy/v1", "holds secret values in the manifest"},
		{"privilege escalation", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation must be false"},
		{"a Deployment", "kind: StatefulSet", "kind: Deployment", "use a StatefulSet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := mutate(t, good, tc.old, tc.new)
			objs, err := parseKubernetes(file, bad)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, checkKubernetes(objs, fs, imageEnv(t)), tc.want)
		})
	}
}

// TestParseKubernetesRejectsBrokenYAML: a syntax error is an error, not an
// empty manifest.
func TestParseKubernetesRejectsBrokenYAML(t *testing.T) {
	if _, err := parseKubernetes("x.yaml", "kind: Service\nspec: [unclosed\n"); err == nil {
		t.Fatal("broken YAML parsed")
	}
	var buf bytes.Buffer
	buf.WriteString("---\n# only a comment\n")
	objs, err := parseKubernetes("x.yaml", buf.String())
	if err != nil || len(objs) != 0 {
		t.Fatalf("objs %v, err %v", objs, err)
	}
}
