package fsm

// A grant is linked into its client's and its user's list (doubly linked
// through the grant's own links, so unlinking is O(1)) for bulk revocation.
// There is no table by id: the client lists reach every grant, and only a
// restore needs ids, for a moment.

// indexGrant links g into its client's and its user's lists.
func (f *FSM) indexGrant(g *grant) {
	f.nGrants.Add(1)
	push(f.byClient, g.clientID(), g, clientList)
	if g.username != "" {
		push(f.bySubject, userKey{g.tenant, g.username}, g, userList)
	}
}

// clientList and userList pick which of a grant's links a list uses.
func clientList(g *grant) *link { return &g.clientLink }
func userList(g *grant) *link   { return &g.userLink }

// push puts g at the head of the list heads[k].
func push[K comparable](heads map[K]*grant, k K, g *grant, l func(*grant) *link) {
	head := heads[k]
	*l(g) = link{next: head}
	if head != nil {
		l(head).prev = g
	}
	heads[k] = g
}

// unlink takes g out of the list heads[k], dropping the list once empty.
func unlink[K comparable](heads map[K]*grant, k K, g *grant, l func(*grant) *link) {
	gl := l(g)
	switch {
	case gl.prev != nil:
		l(gl.prev).next = gl.next
	case gl.next != nil:
		heads[k] = gl.next
	default:
		delete(heads, k)
	}
	if gl.next != nil {
		l(gl.next).prev = gl.prev
	}
	*gl = link{}
}

func (f *FSM) forgetGrant(g *grant) {
	f.nGrants.Add(-1)
	unlink(f.byClient, g.clientID(), g, clientList)
	if g.username != "" {
		unlink(f.bySubject, userKey{g.tenant, g.username}, g, userList)
	}
}

// eachGrant calls fn for every grant (the apply goroutine only).
func (f *FSM) eachGrant(fn func(*grant)) {
	for _, head := range f.byClient {
		for g := head; g != nil; g = g.clientLink.next {
			fn(g)
		}
	}
}

// revokeAll revokes every grant of the list starting at head.
func (f *FSM) revokeAll(head *grant, l func(*grant) *link) uint64 {
	var n uint64
	for g := head; g != nil; {
		next := l(g).next // revokeGrant unlinks g
		f.revokeGrant(g)
		g = next
		n++
	}
	return n
}
