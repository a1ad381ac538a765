// Command raftfloor is the floor under tokend's write path (issue 10): a
// bare hashicorp/raft single node on raft-boltdb/v2 with an in-memory
// transport (what tokend runs alone without a cluster key) and tokend's
// Raft timing settings (cluster/config.go), a no-op batching FSM, and N
// goroutines applying 160-byte commands (an IssueGrant's size). It prints
// applies/s and the process's CPU per apply. Flags try the settings a
// single node could change: BatchApplyCh, MaxAppendEntries, bolt's
// NoFreelistSync, and NoSync (no fsync: its share, not a setting to use).
//
//	go build -o bin/ ./bench/raftfloor && taskset -c 0-1 bin/raftfloor -c 64 -d 5s
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

type nopFSM struct{ n atomic.Uint64 }

func (f *nopFSM) Apply(l *raft.Log) any { f.n.Add(1); return nil }
func (f *nopFSM) ApplyBatch(ls []*raft.Log) []any {
	f.n.Add(uint64(len(ls)))
	return make([]any, len(ls))
}
func (f *nopFSM) Snapshot() (raft.FSMSnapshot, error) { return snap{}, nil }
func (f *nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type snap struct{}

func (snap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (snap) Release()                          {}

func boltOpts(noFreelist bool) *bolt.Options {
	if !noFreelist {
		return nil
	}
	return &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	conc := flag.Int("c", 64, "goroutines")
	dur := flag.Duration("d", 5*time.Second, "")
	batch := flag.Bool("batch", false, "BatchApplyCh")
	maxAE := flag.Int("max-append", 256, "MaxAppendEntries")
	noSync := flag.Bool("nosync", false, "bolt NoSync (no fsync: to see its share)")
	noFreelist := flag.Bool("nofreelistsync", false, "bolt NoFreelistSync + map freelist")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "raftfloor")
	defer os.RemoveAll(dir)
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), NoSync: *noSync, BoltOptions: boltOpts(*noFreelist)})
	if err != nil {
		panic(err)
	}
	snaps := raft.NewInmemSnapshotStore()
	addr, trans := raft.NewInmemTransport("n1")
	rc := raft.DefaultConfig()
	rc.LocalID = "n1"
	rc.HeartbeatTimeout = 1000 * time.Millisecond
	rc.ElectionTimeout = 1000 * time.Millisecond
	rc.LeaderLeaseTimeout = 500 * time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.MaxAppendEntries = *maxAE
	rc.BatchApplyCh = *batch
	rc.SnapshotThreshold = 1 << 40
	rc.LogLevel = "error"
	r, err := raft.NewRaft(rc, &nopFSM{}, store, store, snaps, trans)
	if err != nil {
		panic(err)
	}
	r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}})
	for r.State() != raft.Leader {
		time.Sleep(10 * time.Millisecond)
	}
	cmd := make([]byte, 160)
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(*dur + time.Second)
	var c0 time.Duration
	var n0 int64
	var t0 time.Time
	go func() { time.Sleep(time.Second); c0, n0, t0 = cpu(), n.Load(), time.Now() }()
	for g := 0; g < *conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := r.Apply(cmd, 5*time.Second).Error(); err != nil {
					panic(err)
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	c1, n1, t1 := cpu(), n.Load(), time.Now()
	ops := float64(n1 - n0)
	fmt.Printf("raftfloor c=%d batch=%v maxappend=%d nosync=%v nofreelistsync=%v applies/s=%.0f cpu_cores=%.2f cpu_us_per_apply=%.1f\n",
		*conc, *batch, *maxAE, *noSync, *noFreelist, ops/t1.Sub(t0).Seconds(), (c1-c0).Seconds()/t1.Sub(t0).Seconds(), float64((c1-c0).Microseconds())/ops)
	r.Shutdown().Error()
}
