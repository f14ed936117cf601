package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"cel.dev/cel-go/cel"
)

// Compiled is a validated policy prepared for the exchange hot path: its
// sources parsed and its CEL expressions compiled into programs. It is
// immutable and safe for concurrent use.
type Compiled struct {
	Policy     Policy
	conditions []compiledCondition
	mappings   []compiledMapping
	lifetime   time.Duration
}

type compiledCondition struct {
	field string // "conditions[i]"
	expr  string
	prg   cel.Program
}

type mappingKind uint8

const (
	copyMapping mappingKind = iota
	exprMapping
	staticMapping
)

type compiledMapping struct {
	field     string // "claims[i]"
	claim     string
	kind      mappingKind
	path      []string            // copyMapping
	sources   map[string][]string // copyMapping: by issuer name
	prg       cel.Program         // exprMapping
	value     json.RawMessage     // staticMapping, compacted
	required  bool
	dropEmpty bool
}

// Compile validates p, compiles its CEL expressions and prepares it for
// evaluation. Every problem is reported at once, in a *ValidationError
// whose CEL problems carry their position in the expression.
func Compile(p Policy) (*Compiled, error) {
	var v ValidationError
	validateFields(&p, &v)
	c := &Compiled{Policy: p, lifetime: time.Duration(p.TokenLifetimeSeconds) * time.Second}
	if len(p.Conditions) > MaxConditions {
		v.Add("conditions", "at most %d conditions", MaxConditions)
	}
	for i, src := range p.Conditions {
		field := fmt.Sprintf("conditions[%d]", i)
		if src == "" || len(src) > MaxExpressionLength {
			v.Add(field, "must be a CEL expression of 1 to %d characters", MaxExpressionLength)
			continue
		}
		c.conditions = append(c.conditions, compiledCondition{field: field, expr: src, prg: compileExpr(&v, field, src, conditionExpr)})
	}
	if len(p.Claims) > MaxClaims {
		v.Add("claims", "at most %d mappings", MaxClaims)
	}
	seen := make(map[string]bool, len(p.Claims))
	for i, m := range p.Claims {
		validateMapping(&p, i, m, seen, &v)
		c.mappings = append(c.mappings, compileMapping(&p, i, m, &v))
	}
	validateTail(&p, &v)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// compileMapping prepares a mapping that validateMapping has checked; what
// it cannot prepare is recorded on v.
func compileMapping(p *Policy, i int, m ClaimMapping, v *ValidationError) compiledMapping {
	cm := compiledMapping{field: fmt.Sprintf("claims[%d]", i), claim: m.Claim, required: m.Required,
		dropEmpty: m.Empty == EmptyDrop || m.Empty == "" && p.EmptyClaims == EmptyDrop}
	switch {
	case m.Expression != "":
		cm.kind = exprMapping
		if len(m.Expression) <= MaxExpressionLength {
			cm.prg = compileExpr(v, fmt.Sprintf("claims[%d].expression", i), m.Expression, claimExpr)
		}
	case len(m.Value) > 0:
		cm.kind = staticMapping
		var b bytes.Buffer
		if json.Compact(&b, m.Value) == nil {
			cm.value = b.Bytes()
		}
	default:
		cm.path, _ = parseSource(m.source()) // checked by validateMapping
		for iss, src := range m.Sources {
			if path, err := parseSource(src); err == nil {
				if cm.sources == nil {
					cm.sources = make(map[string][]string, len(m.Sources))
				}
				cm.sources[iss] = path
			}
		}
	}
	return cm
}

// AllowsClient reports whether the client may ask for this audience.
func (c *Compiled) AllowsClient(clientID string) bool {
	return slices.Contains(c.Policy.AllowedClients, clientID)
}

// AllowsIssuer reports whether subject tokens of the named issuer are accepted.
func (c *Compiled) AllowsIssuer(issuerName string) bool {
	return slices.Contains(c.Policy.AllowedIssuers, issuerName)
}

// Serves reports whether target is one of the policy's targets.
func (c *Compiled) Serves(target string) bool {
	return target == c.Policy.Audience || slices.Contains(c.Policy.Audiences, target)
}

// Lifetime is the policy's token lifetime, or def when the policy sets none.
func (c *Compiled) Lifetime(def time.Duration) time.Duration {
	if c.lifetime > 0 {
		return c.lifetime
	}
	return def
}

// CopiedClaims returns the top-level subject claims the copy mappings pass
// for subject tokens of the named issuer.
func (c *Compiled) CopiedClaims(issuer string) []string {
	var out []string
	for _, m := range c.mappings {
		if m.kind != copyMapping {
			continue
		}
		path := m.path
		if p, ok := m.sources[issuer]; ok {
			path = p
		}
		out = append(out, path[0])
	}
	return out
}
