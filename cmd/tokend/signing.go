package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/keys"
)

// signingSkew is added to the longest token lifetime before a retired
// signing key leaves the JWKS: relying parties accept tokens a few minutes
// past exp when clocks disagree.
const signingSkew = 5 * time.Minute

const signingAlgsUsage = "comma-separated algorithms of the JWT signing keys (ES256, RS256, EdDSA): the first signs ID tokens and JWT access tokens, every one has a current and a next key in the JWKS (default ES256,RS256: OpenID Connect requires RS256 keys)"

// algsFlag is --signing-algs: a listFlag of supported algorithms, checked
// as it is parsed so a typo fails before anything starts.
type algsFlag []string

func (a *algsFlag) String() string { return (*listFlag)(a).String() }

func (a *algsFlag) Set(v string) error {
	if err := (*listFlag)(a).Set(v); err != nil {
		return err
	}
	for _, alg := range *a {
		if !slices.Contains(keys.Algorithms, alg) {
			return fmt.Errorf("%q is not one of %v", alg, keys.Algorithms)
		}
	}
	return nil
}

// newSigningKeys builds the manager of the JWT signing keys (package
// keys) over the node's replicated state. Private keys are sealed under the
// cluster key (the accepted keys of a rotation open them too); a node
// without one seals under a key file in its data directory, created on
// first start. A node that once ran without a cluster key and has one now
// still opens what its key file sealed, until the next rotation seals
// everything under the cluster key.
func (c *serveConfig) newSigningKeys(key []byte, acceptKeys [][]byte, state *fsm.FSM, node *cluster.Node) (*keys.Manager, error) {
	path := filepath.Join(c.dataDir, keys.KeyFileName)
	var primary []byte
	accept := acceptKeys
	if len(key) > 0 {
		primary = key
		if _, err := os.Lstat(path); err == nil {
			fileKey, err := keys.LoadOrCreateKeyFile(path)
			if err != nil {
				return nil, err
			}
			accept = append(accept[:len(accept):len(accept)], fileKey)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
	} else {
		fileKey, err := keys.LoadOrCreateKeyFile(path)
		if err != nil {
			return nil, err
		}
		primary = fileKey
	}
	sealer, err := keys.NewSealer(primary, accept...)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	cfg := keys.Config{FSM: state, Apply: node.Apply, Sealer: sealer, Algs: c.signingAlgs, RetireAfter: c.signedLifetime() + signingSkew}
	if len(cfg.Algs) > 0 {
		cfg.Alg = cfg.Algs[0]
	}
	m, err := keys.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("--signing-algs: %w", err)
	}
	return m, nil
}

// signedLifetime is the longest lifetime of anything tokend signs: JWT
// access tokens live --access-token-ttl, ID tokens --id-token-ttl (by
// default the same).
func (c *serveConfig) signedLifetime() time.Duration { return max(c.accessTTL, c.idTokenTTL) }
