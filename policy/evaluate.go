package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Input is what a policy is evaluated over.
type Input struct {
	// Subject holds the subject's verified claims, numbers as json.Number.
	Subject map[string]any
	// Issuer is the name of the trusted issuer of the subject token.
	Issuer  string
	Request Request
}

// Claim is one claim for the minted token.
type Claim struct {
	Name  string
	Value any
}

// Denied is a policy's refusal of an exchange. Reason is safe to show to
// the client: it names fields and expressions of the policy, never a claim
// value. Err, for logs, is the evaluation error if there was one.
type Denied struct {
	// Field is the policy field that denied: "conditions[0]", "claims[2]".
	Field  string
	Reason string
	Err    error
}

func (d *Denied) Error() string {
	if d.Err != nil {
		return d.Reason + ": " + d.Err.Error()
	}
	return d.Reason
}

func (d *Denied) Unwrap() error { return d.Err }

// errCostLimit: the evaluation went beyond MaxCost.
var errCostLimit = fmt.Errorf("the CEL evaluation exceeded its cost limit of %d", MaxCost)

// Outcomes of a Step.
const (
	OutcomeSatisfied    = "satisfied"     // a condition held
	OutcomeNotSatisfied = "not_satisfied" // a condition did not hold: denied
	OutcomePassed       = "passed"        // a claim is in the token
	OutcomeDropped      = "dropped"       // a claim is not, and need not be
	OutcomeDenied       = "denied"        // a required claim has no value: denied
	OutcomeError        = "error"         // an expression failed: denied
)

// Step explains what one condition or claim mapping decided.
type Step struct {
	Field   string `json:"field"`
	Claim   string `json:"claim,omitempty"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

// Trace records an evaluation step by step, for a preview.
type Trace struct {
	Steps []Step
	// Cost is the CEL cost spent, in the units of MaxCost.
	Cost uint64
}

// Evaluate checks the policy's conditions for in and appends the claims it
// sets to out, in the policy's order. Values keep their JSON types: arrays
// and objects of the subject are passed through as they are, never
// flattened. A denial is a *Denied.
//
// Without a trace, evaluation stops at the first denial. With one, every
// condition and mapping is evaluated and explained, and the first denial
// is returned at the end.
func (c *Compiled) Evaluate(in *Input, out []Claim, tr *Trace) ([]Claim, error) {
	ev := evaluation{c: c, in: in, tr: tr}
	for i := range c.conditions {
		ev.condition(i)
		if ev.denied != nil && tr == nil {
			return nil, ev.denied
		}
	}
	for i := range c.mappings {
		out = ev.mapping(i, out)
		if ev.denied != nil && tr == nil {
			return nil, ev.denied
		}
	}
	if tr != nil {
		tr.Cost = ev.cost
	}
	if ev.denied != nil {
		return nil, ev.denied
	}
	return out, nil
}

// evaluation is the state of one Evaluate.
type evaluation struct {
	c      *Compiled
	in     *Input
	tr     *Trace
	cost   uint64
	denied *Denied
}

func (ev *evaluation) deny(field, reason string, err error) {
	if ev.denied == nil {
		ev.denied = &Denied{Field: field, Reason: reason, Err: err}
	}
}

func (ev *evaluation) note(field, claim, outcome, reason string) {
	ev.tr.Steps = append(ev.tr.Steps, Step{Field: field, Claim: claim, Outcome: outcome, Reason: reason})
}

// run evaluates prg within what is left of the policy's cost budget.
func (ev *evaluation) run(prg cel.Program) (ref.Val, error) {
	if ev.cost > MaxCost {
		return nil, errCostLimit
	}
	v, spent, err := eval(prg, ev.in)
	ev.cost += spent
	if err == nil && ev.cost > MaxCost {
		err = errCostLimit
	}
	return v, err
}

func (ev *evaluation) condition(i int) {
	expr, field := ev.c.conditions[i].expr, ev.c.conditions[i].field
	v, err := ev.run(ev.c.conditions[i].prg)
	outcome, why := OutcomeNotSatisfied, ""
	switch {
	case errors.Is(err, errMissing):
		why = "it reads a claim the subject does not have"
		ev.deny(field, field+" is not satisfied (it reads a claim the subject does not have): "+short(expr), nil)
	case errors.Is(err, errCostLimit):
		outcome, why = OutcomeError, err.Error()
		ev.deny(field, "the evaluation exceeded its cost limit at "+field, err)
	case err != nil:
		outcome, why = OutcomeError, "evaluation failed: "+err.Error()
		ev.deny(field, field+" could not be evaluated: "+short(expr), err)
	case v == types.True:
		outcome, why = OutcomeSatisfied, "true"
	case v == types.False:
		why = "false"
		ev.deny(field, field+" is not satisfied: "+short(expr), nil)
	default:
		outcome, why = OutcomeError, "yields a "+v.Type().TypeName()+", not a boolean"
		ev.deny(field, field+" does not yield a boolean: "+short(expr), nil)
	}
	if ev.tr != nil {
		ev.note(field, "", outcome, why)
	}
}

func (ev *evaluation) mapping(i int, out []Claim) []Claim {
	m := &ev.c.mappings[i]
	field := m.field
	v, present, why, err := ev.value(m)
	if err != nil {
		if errors.Is(err, errCostLimit) {
			ev.deny(field, "the evaluation exceeded its cost limit at "+field, err)
		} else {
			ev.deny(field, field+" ("+strconv.Quote(m.claim)+") could not be computed", err)
		}
		if ev.tr != nil {
			ev.note(field, m.claim, OutcomeError, "evaluation failed: "+err.Error())
		}
		return out
	}
	if present && m.dropEmpty && isEmpty(v) {
		present, why = false, "its value is empty and empty claims are dropped"
	}
	switch {
	case present:
		if ev.tr != nil {
			ev.note(field, m.claim, OutcomePassed, ev.describe(i))
		}
		return append(out, Claim{Name: m.claim, Value: v})
	case m.required:
		ev.deny(field, "the required claim "+strconv.Quote(m.claim)+" ("+field+") has no value for this subject", nil)
		if ev.tr != nil {
			ev.note(field, m.claim, OutcomeDenied, "required, but "+why)
		}
	case ev.tr != nil:
		ev.note(field, m.claim, OutcomeDropped, why)
	}
	return out
}

// value computes a mapping's value; why says why it is not present.
func (ev *evaluation) value(m *compiledMapping) (v any, present bool, why string, err error) {
	switch m.kind {
	case staticMapping:
		return m.value, true, "", nil
	case copyMapping:
		path := m.path
		if p, ok := m.sources[ev.in.Issuer]; ok {
			path = p
		}
		v, present = lookup(ev.in.Subject, path)
		return v, present, "the subject has no such claim, or it is null", nil
	}
	val, err := ev.run(m.prg)
	switch {
	case errors.Is(err, errMissing):
		return nil, false, "the expression reads a claim the subject does not have", nil
	case err != nil:
		return nil, false, "", err
	}
	if o, ok := val.(*types.Optional); ok {
		if !o.HasValue() {
			return nil, false, "the expression yields an empty optional", nil
		}
		val = o.GetValue()
	}
	if val == types.NullValue {
		return nil, false, "the expression yields null", nil
	}
	budget := maxResultValues
	v, err = toJSON(val, 0, &budget)
	return v, err == nil, "", err
}

// describe says where a passed claim came from, for a trace.
func (ev *evaluation) describe(i int) string {
	m := ev.c.Policy.Claims[i]
	switch {
	case m.Expression != "":
		return "computed by its expression"
	case len(m.Value) > 0:
		return "a static value"
	}
	if src, ok := m.Sources[ev.in.Issuer]; ok {
		return "copied from " + strconv.Quote(src) + " (the source for issuer " + strconv.Quote(ev.in.Issuer) + ")"
	}
	return "copied from " + strconv.Quote(m.source())
}

// lookup follows path through nested JSON objects. A null value is
// missing.
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

// isEmpty reports whether v is an empty string, array or object.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// short renders an expression for a description: on one line, bounded.
func short(expr string) string {
	const max = 200
	expr = strings.Join(strings.Fields(expr), " ")
	if len(expr) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(expr[cut]) {
			cut--
		}
		expr = expr[:cut] + "…"
	}
	return expr
}
