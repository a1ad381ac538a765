package fsm

// A grant is linked into its client's and its user's list (doubly linked
// through the grant's own links, so unlinking is O(1)) for bulk revocation.
// There is no table by id: the client lists reach every grant, and only a
// restore needs ids, for a moment.

// indexGrant links g into its client's and its user's lists.
func (f *FSM) indexGrant(g *grant) {
	f.nGrants.Add(1)
	head := f.byClient[g.clientID]
	g.clientLink = link{next: head}
	if head != nil {
		head.clientLink.prev = g
	}
	f.byClient[g.clientID] = g
	if u := g.user; u != nil && u.username != "" {
		g.userLink = link{next: u.head}
		if u.head != nil {
			u.head.userLink.prev = g
		}
		u.head = g
	}
}

// subjectFor returns the user entry of tenant/username, created if new:
// nil for neither, and a private entry (in no list) for a tenant without
// a user, which a command may name.
func (f *FSM) subjectFor(tenant, username string) *subject {
	switch {
	case username == "" && tenant == "":
		return nil
	case username == "":
		return &subject{tenant: f.intern(tenant)}
	}
	k := userKey{tenant, username}
	u := f.bySubject[k]
	if u == nil {
		u = &subject{tenant: f.intern(tenant), username: username}
		f.bySubject[userKey{u.tenant, u.username}] = u
	}
	return u
}

// userGrants is the head of a user's grant list, nil if none.
func (f *FSM) userGrants(tenant, username string) *grant {
	if u := f.bySubject[userKey{tenant, username}]; u != nil {
		return u.head
	}
	return nil
}

// clientList and userList pick which of a grant's links a list uses.
func clientList(g *grant) *link { return &g.clientLink }
func userList(g *grant) *link   { return &g.userLink }

// unlink takes g out of the list whose head is *head, reporting whether
// the list is empty now.
func unlink(head **grant, g *grant, l func(*grant) *link) bool {
	gl := l(g)
	if gl.prev != nil {
		l(gl.prev).next = gl.next
	} else {
		*head = gl.next
	}
	if gl.next != nil {
		l(gl.next).prev = gl.prev
	}
	*gl = link{}
	return *head == nil
}

func (f *FSM) forgetGrant(g *grant) {
	f.nGrants.Add(-1)
	head := f.byClient[g.clientID]
	if unlink(&head, g, clientList) {
		delete(f.byClient, g.clientID)
	} else {
		f.byClient[g.clientID] = head
	}
	if u := g.user; u != nil && u.username != "" && unlink(&u.head, g, userList) {
		delete(f.bySubject, userKey{u.tenant, u.username})
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
