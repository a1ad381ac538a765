// Command cpureq measures tokend's CPU per request (issue 10): it starts
// one node of the given tokend binary on 127.0.0.1 (optionally pinned with
// taskset), drives it with the given tokend-bench (pinned elsewhere), and
// over a steady window inside the measured phase divides the node's
// utime+stime (/proc/PID/stat, Linux only) by the requests the node itself
// counted (tokend_http_requests_total of the scenario's route). With
// --profile it also saves a CPU profile of that window from the node's
// pprof endpoint. bench/cpu-per-request.sh runs it for two builds in
// interleaved rounds.
//
//	go build -o bin/ ./bench/cpureq
//	bin/cpureq -tokend bin/tokend -bench bin/tokend-bench -srv-cpus 0-1 -bench-cpus 2-9 -scenario issue-cc -c 64
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func cpuTicks(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u + st
}

func count(base, route string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var n float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "tokend_http_requests_total{") && strings.Contains(l, `route="`+route+`"`) {
			v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			n += v
		}
	}
	return n
}

func main() {
	tokend := flag.String("tokend", "", "tokend binary")
	bench := flag.String("bench", "", "tokend-bench binary")
	scen := flag.String("scenario", "issue-cc", "")
	conc := flag.Int("c", 64, "")
	dur := flag.Duration("d", 6*time.Second, "")
	srvCPU := flag.String("srv-cpus", "", "taskset list for the server")
	benchCPU := flag.String("bench-cpus", "", "taskset list for the bench")
	tokens := flag.Int("tokens", 20000, "")
	label := flag.String("label", "", "")
	profile := flag.String("profile", "", "write a CPU profile of the steady window to this file")
	flag.Parse()
	if *tokend == "" || *bench == "" || *dur < 3*time.Second {
		fmt.Fprintln(os.Stderr, "cpureq: -tokend and -bench are required, -d at least 3s")
		os.Exit(2)
	}
	dir, _ := os.MkdirTemp("", "cpureq")
	defer os.RemoveAll(dir)
	port := freePort()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	tok := "cpureq-admin-token-0123456789abcdef0123456789"
	wrap := func(cpus, bin string, args ...string) *exec.Cmd {
		if cpus != "" {
			return exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
		}
		return exec.Command(bin, args...)
	}
	srv := wrap(*srvCPU, *tokend, "serve", "--node-id", "n1", "--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:"+strconv.Itoa(port), "--raft-addr", "127.0.0.1:"+strconv.Itoa(freePort()),
		"--gossip-addr", "127.0.0.1:"+strconv.Itoa(freePort()), "--log-level", "warn")
	srv.Env = append(os.Environ(), "TOKEND_ADMIN_TOKEN="+tok)
	logf, _ := os.Create(filepath.Join(dir, "log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		panic(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for i := 0; i < 300; i++ {
		if r, err := http.Get(base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	route := map[string]string{"issue-cc": "/token", "introspect": "/introspect", "validate": "/validate"}[*scen]
	b := wrap(*benchCPU, *bench, "--target", base, "--admin-token", tok, "--concurrency", strconv.Itoa(*conc),
		"--warmup", "2s", "--duration", dur.String(), "--json", "", "--plot", "", "--quiet", "--tokens", strconv.Itoa(*tokens), *scen)
	out, _ := os.Create(filepath.Join(dir, "bench"))
	b.Stdout, b.Stderr = out, out
	if err := b.Start(); err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() { b.Wait(); close(done) }()
	// wait for the measured load: the counter moving, then 1.5s more.
	for count(base, route) < 200 {
		select {
		case <-done:
			fmt.Println("bench ended early")
			os.Exit(1)
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(1500 * time.Millisecond)
	pid := srv.Process.Pid // taskset execs tokend in place: the same pid
	profDone := make(chan struct{})
	if *profile != "" {
		go func() {
			defer close(profDone)
			secs := int((*dur - 2500*time.Millisecond).Seconds())
			req, _ := http.NewRequest("GET", base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				fmt.Println("profile:", err)
				return
			}
			defer resp.Body.Close()
			f, _ := os.Create(*profile)
			io.Copy(f, resp.Body)
			f.Close()
		}()
	} else {
		close(profDone)
	}
	c0, n0, t0 := cpuTicks(pid), count(base, route), time.Now()
	time.Sleep(*dur - 1500*time.Millisecond)
	c1, n1, t1 := cpuTicks(pid), count(base, route), time.Now()
	<-done
	<-profDone
	dt := t1.Sub(t0).Seconds()
	cpu := (c1 - c0) / 100 // USER_HZ is 100 on Linux
	fmt.Printf("%-6s %-10s c=%-3d req/s=%7.0f server_cores=%.2f cpu_us_per_req=%5.1f\n", *label, *scen, *conc, (n1-n0)/dt, cpu/dt, cpu*1e6/(n1-n0))
	out.Seek(0, 0)
	rest, _ := io.ReadAll(out)
	for _, l := range strings.Split(string(rest), "\n") {
		if strings.Contains(l, "  all ") {
			fmt.Println("   bench:", strings.Join(strings.Fields(l), " "))
		}
	}
}
