package sts

import (
	"context"
	"slices"

	"github.com/claimbridge/claimbridge/policy"
)

// exchangeCached serves an authorized request through the cache. An entry
// is served only while it is current: minted under the very policy the
// snapshot now serves the targets with (a new version is a new compiled
// policy), from a subject token of an issuer the snapshot still trusts
// with the same definition, and signed by the key that now signs for the
// policy's algorithm. Anything else is a miss, so a policy, issuer or key
// change invalidates the affected entries without a scan.
func (e *Exchanger) exchangeCached(ctx context.Context, snap *snapshot, req *Request, asked string, pol *policy.Compiled, targets []string, kind tokenKind) (*Response, error) {
	keys := e.opts.ActiveKeys
	alg := pol.Policy.SigningAlgorithm
	valid := func(st Stamp) bool {
		if st.pol != pol || st.issuer == nil {
			return false
		}
		v := snap.issuers[st.issuer.URL]
		return v != nil && &v.issuer == st.issuer && keys.KeyIDFor(alg) == st.kid
	}
	mint := func() (*Response, Stamp, error) {
		// The mint serves every concurrent caller of this key: it must not
		// fail because the first of them went away.
		subj, err := snap.verifySubject(context.WithoutCancel(ctx), *req, pol)
		if err != nil {
			return nil, Stamp{}, err
		}
		d, err := decide(req, pol, targets, subj, kind, nil)
		if err != nil {
			return nil, Stamp{}, err
		}
		// Read before signing: a rotation in between makes the entry stale
		// rather than stamping an old token with the new kid.
		kid := keys.KeyIDFor(alg)
		resp, err := e.mint(&d)
		return resp, Stamp{pol: pol, issuer: subj.Issuer, kid: kid}, err
	}
	resp, err := e.opts.Cache.Do(ctx, KeyFor(req, asked), valid, mint)
	if err != nil {
		return nil, err
	}
	// The key ignores the order of the scopes; the response must not.
	resp.ScopeChanged = !slices.Equal(resp.Scope, req.Scopes)
	return resp, nil
}
