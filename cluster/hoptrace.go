package cluster

// Hop tracing: the write-path benchmark (hoptrace_test.go) installs a
// hopTracer to timestamp each hop of one write through a follower:
// queued, batch sent, received and proposed on the leader, applied on each
// node, lease reports, released by the visibility barrier, answered. In
// production none is installed and a hop costs one atomic load.
type hopTracer func(node, hop string)

// hop records that this node passed hop, if a tracer is installed.
func (n *Node) hop(name string) {
	if f := n.tracer.Load(); f != nil {
		(*f)(n.cfg.NodeID, name)
	}
}
