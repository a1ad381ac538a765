package cluster

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"
)

// The internal port's certificates.
//
// With only a cluster key, every node derives the same cluster CA from it:
// HKDF-SHA256 (salt caSalt, info caInfo) expands the key into a 32-byte
// Ed25519 seed, and the CA certificate is self-signed with fixed serial 1,
// fixed validity (caNotBefore to caNotAfter) and a subject naming the first
// 8 bytes of the SHA-256 of its public key. Ed25519 signatures are
// deterministic, so every node builds the identical CA certificate without
// exchanging anything. At start-up each node mints its own leaf: a fresh
// Ed25519 key, CN = node id, serverAuth and clientAuth, valid leafLifetime,
// re-minted when half of that has passed. Peers are accepted when their
// certificate chains to the CA of the primary key or of any key in
// AcceptKeys (key rotation). So possession of the cluster key is exactly
// what it takes to join, and nothing on the wire can be forged or replayed
// without it: TLS 1.3 authenticates both ends and every record.
//
// With operator PKI (TLSFiles) the node presents the operator's
// certificate and trusts only the given CA bundle. Host names are not
// checked in either mode: the CA attests cluster membership, not an
// address (nodes are dialled by the Raft address they advertise), so an
// operator CA must be dedicated to this cluster.
const (
	caSalt       = "tokend cluster CA v1"
	caInfo       = "ed25519 CA signing key"
	leafLifetime = 24 * time.Hour
	// leafBackdate tolerates peers whose wall clocks are a little behind.
	leafBackdate = 5 * time.Minute
)

var (
	caNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2120, 1, 1, 0, 0, 0, 0, time.UTC)
)

// clusterCA is a CA derived from one cluster key.
type clusterCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
}

// deriveCA builds the cluster CA for key. The same key always gives the
// same certificate, byte for byte.
func deriveCA(key []byte) (*clusterCA, error) {
	seed, err := hkdf.Key(sha256.New, key, []byte(caSalt), caInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive CA key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	fp := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tokend cluster CA " + hex.EncodeToString(fp[:8])},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          fp[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &clusterCA{cert: cert, key: priv}, nil
}

// mintLeaf issues a fresh leaf certificate for nodeID, valid from now.
func (ca *clusterCA) mintLeaf(nodeID string, now time.Time) (*tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID},
		NotBefore:    now.Add(-leafBackdate),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("mint leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: crypto.Signer(priv), Leaf: leaf}, nil
}

// identity is what this node presents and whom it trusts on the internal
// port.
type identity struct {
	roots *x509.CertPool
	// cert returns the certificate to present now.
	cert func() (*tls.Certificate, error)
}

// newIdentity builds the node's internal-port identity from operator files
// when they are set, otherwise from the cluster keys.
func newIdentity(nodeID string, key []byte, accept [][]byte, files TLSFiles) (*identity, error) {
	if files.set() {
		return fileIdentity(files)
	}
	if len(key) == 0 {
		return nil, errors.New("no cluster key and no internal TLS files")
	}
	roots := x509.NewCertPool()
	var primary *clusterCA
	for i, k := range append([][]byte{key}, accept...) {
		ca, err := deriveCA(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			primary = ca
		}
		roots.AddCert(ca.cert)
	}
	r := &leafRenewer{ca: primary, nodeID: nodeID}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return &identity{roots: roots, cert: r.get}, nil
}

func fileIdentity(f TLSFiles) (*identity, error) {
	if f.CertFile == "" || f.KeyFile == "" || f.CAFile == "" {
		return nil, errors.New("internal TLS needs a certificate, a key and a CA file")
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("internal TLS key pair: %w", err)
	}
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("internal TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("internal TLS CA %s: no PEM certificates", f.CAFile)
	}
	return &identity{roots: roots, cert: func() (*tls.Certificate, error) { return &pair, nil }}, nil
}

// leafRenewer hands out the node's leaf, minting a new one once half of
// the current one's lifetime has passed, so a long-running node never
// presents an expired certificate.
type leafRenewer struct {
	ca     *clusterCA
	nodeID string

	mu      sync.Mutex
	leaf    *tls.Certificate
	renewAt time.Time
}

func (r *leafRenewer) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.leaf == nil || now.After(r.renewAt) {
		leaf, err := r.ca.mintLeaf(r.nodeID, now)
		if err != nil {
			return nil, err
		}
		r.leaf, r.renewAt = leaf, now.Add(leafLifetime/2)
	}
	return r.leaf, nil
}

// serverTLS is the listener side: TLS 1.3 only, a client certificate that
// chains to the cluster's CAs required.
func (id *identity) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  id.roots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.cert()
		},
		NextProtos: []string{alpnInternal},
	}
}

// clientTLS is the dialling side. Verification is done in
// VerifyConnection rather than by the standard host-name check, because
// membership (the chain to the cluster CA), not the address, is what a
// peer's certificate attests (see above). InsecureSkipVerify only turns off
// the built-in check; verifyPeer replaces it and fails closed.
func (id *identity) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection:   id.verifyPeer,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.cert()
		},
		NextProtos: []string{alpnInternal},
	}
}

func (id *identity) verifyPeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         id.roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	return nil
}
