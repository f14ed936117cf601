package policy

import (
	"slices"
	"time"
)

// Compiled is a validated policy prepared for the exchange hot path. It is
// immutable and safe for concurrent use.
type Compiled struct {
	Policy   Policy
	mappings []compiledMapping
	lifetime time.Duration
}

type compiledMapping struct {
	claim string
	path  []string
}

// Compile validates p and prepares it for evaluation.
func Compile(p Policy) (*Compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Compiled{Policy: p, lifetime: time.Duration(p.TokenLifetimeSeconds) * time.Second}
	for _, m := range p.Claims {
		path, _ := parseSource(m.source()) // checked by Validate
		c.mappings = append(c.mappings, compiledMapping{claim: m.Claim, path: path})
	}
	return c, nil
}

// AllowsClient reports whether the client may ask for this audience.
func (c *Compiled) AllowsClient(clientID string) bool {
	return slices.Contains(c.Policy.AllowedClients, clientID)
}

// AllowsIssuer reports whether subject tokens of the named issuer are accepted.
func (c *Compiled) AllowsIssuer(issuerName string) bool {
	return slices.Contains(c.Policy.AllowedIssuers, issuerName)
}

// Lifetime is the policy's token lifetime, or def when the policy sets none.
func (c *Compiled) Lifetime(def time.Duration) time.Duration {
	if c.lifetime > 0 {
		return c.lifetime
	}
	return def
}

// GrantScopes returns the requested scopes the policy allows, in request
// order. Nothing requested grants nothing.
func (c *Compiled) GrantScopes(requested []string) []string {
	var granted []string
	for _, s := range requested {
		if slices.Contains(c.Policy.Scopes, s) && !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	return granted
}

// Claim is one claim for the minted token.
type Claim struct {
	Name  string
	Value any
}

// Apply appends the mapped claims of subject to out, in the policy's order.
// Values keep their JSON types: arrays and objects are passed through as
// they are, never flattened. A missing source is skipped.
func (c *Compiled) Apply(subject map[string]any, out []Claim) []Claim {
	for _, m := range c.mappings {
		if v, ok := lookup(subject, m.path); ok {
			out = append(out, Claim{Name: m.claim, Value: v})
		}
	}
	return out
}

// lookup follows path through nested JSON objects.
func lookup(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, seg := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}
