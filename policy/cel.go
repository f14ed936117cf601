package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Cost bounds of CEL. One cost unit is one cheap operation (a field
// access, a comparison, one element of a list walked): tens of
// nanoseconds.
const (
	// MaxCost bounds the CEL evaluation of one policy for one exchange:
	// every condition and claim expression together. An evaluation that
	// goes beyond it denies the exchange.
	MaxCost = 100_000
	// estimateListSize and estimateItemSize are what the write-time cost
	// estimate assumes of the subject: claims of up to 256 values, each a
	// string of up to 256 bytes. An expression whose estimated worst case
	// for such a subject exceeds MaxCost is refused when it is written.
	estimateListSize = MaxListLength
	estimateItemSize = 256
	// maxResultValues bounds the values (array elements and object members,
	// nested ones included) of one expression's result.
	maxResultValues = 10_000
	// maxResultDepth bounds the nesting of one expression's result.
	maxResultDepth = 32
	// maxIssuesPerExpression bounds the compile errors reported for one
	// expression.
	maxIssuesPerExpression = 5
)

// Request is the exchange request as CEL sees it, the variable "request".
type Request struct {
	ClientID string `cel:"client_id"`
	// Audiences are the requested targets, audience and resource values.
	Audiences []string `cel:"audiences"`
	// Scopes is the requested scope; GrantedScopes what will be granted.
	Scopes             []string `cel:"scopes"`
	GrantedScopes      []string `cel:"granted_scopes"`
	SubjectTokenType   string   `cel:"subject_token_type"`
	RequestedTokenType string   `cel:"requested_token_type"`
}

// celEnv is the one environment every expression is compiled in. It holds
// no state that changes: building it once is a cache, not configuration.
var celEnv = sync.OnceValues(newCELEnv)

func newCELEnv() (*cel.Env, error) {
	base, err := cel.NewEnv(
		cel.Types(cel.NativeTypeFor[Request](types.ParseStructTags(true), cel.NativeTypeAlias("claimbridge.Request"))),
		cel.Variable("subject", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("request", cel.ObjectType("claimbridge.Request")),
		cel.Variable("issuer", cel.StringType),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(), ext.Lists(), ext.Sets(),
	)
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	env, err := base.Extend(cel.CustomTypeAdapter(jsonAdapter{base.CELTypeAdapter()}))
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	return env, nil
}

// exprKind is what an expression must yield.
type exprKind int

const (
	conditionExpr exprKind = iota // a boolean
	claimExpr                     // a JSON value
)

// compileExpr parses, type-checks and cost-checks src and plans its
// program. Problems are recorded on v under field, with their position.
func compileExpr(v *ValidationError, field, src string, kind exprKind) cel.Program {
	env, err := celEnv()
	if err != nil {
		v.Add(field, "%v", err)
		return nil
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		for i, e := range iss.Errors() {
			if i == maxIssuesPerExpression {
				break
			}
			line, col := e.Location.Line(), e.Location.Column()+1
			v.Fields = append(v.Fields, FieldError{Field: field, Line: line, Column: col,
				Reason: fmt.Sprintf("at %d:%d: %s", line, col, e.Message)})
		}
		return nil
	}
	if reason := checkOutput(ast.OutputType(), kind); reason != "" {
		v.Add(field, "%s", reason)
		return nil
	}
	est, err := env.EstimateCost(ast, estimator{})
	if err != nil {
		v.Add(field, "its cost cannot be estimated: %v", err)
		return nil
	}
	if est.Max > MaxCost {
		v.Add(field, "its estimated cost (%d) exceeds the limit of %d for a subject whose claims hold up to %d values of %d bytes; simplify it (iterating over one claim inside another is the usual cause)", est.Max, MaxCost, estimateListSize, estimateItemSize)
		return nil
	}
	prg, err := env.Program(ast, cel.CostLimit(MaxCost), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		v.Add(field, "%v", err)
		return nil
	}
	return prg
}

// checkOutput explains why an expression of type t cannot be used as kind,
// or returns "".
func checkOutput(t *cel.Type, kind exprKind) string {
	k := t.Kind()
	if kind == conditionExpr {
		if k == types.BoolKind || k == types.DynKind {
			return ""
		}
		return "must be a boolean expression, not " + t.String()
	}
	switch k {
	case types.BytesKind, types.DurationKind, types.TimestampKind, types.TypeKind, types.StructKind:
		return "yields " + t.String() + ", which has no JSON form; convert it, e.g. with string()"
	}
	return ""
}

// estimator sizes the subject's and the request's values for the
// write-time cost estimate; see estimateListSize.
type estimator struct{}

func (estimator) EstimateSize(node cost.AstNode) *cost.SizeEstimate {
	p := node.Path()
	if len(p) == 0 || (p[0] != "subject" && p[0] != "request" && p[0] != "issuer") {
		return nil
	}
	size := cost.RangedSizeEstimate(0, estimateListSize)
	if last := p[len(p)-1]; last == "@items" || last == "@values" || last == "@keys" {
		size = cost.RangedSizeEstimate(0, estimateItemSize)
	}
	return &size
}

func (estimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// jsonAdapter presents JSON values to CEL: json.Number becomes an int, a
// uint when it does not fit an int, else a double; objects and arrays are
// adapted lazily, element by element, as the expression reads them.
type jsonAdapter struct{ types.Adapter }

func (a jsonAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case json.Number:
		return numberValue(v)
	case map[string]any:
		return types.NewStringInterfaceMap(a, v)
	case []any:
		return types.NewDynamicList(a, v)
	}
	return a.Adapter.NativeToValue(v)
}

func numberValue(n json.Number) ref.Val {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return types.Int(i)
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return types.Uint(u)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return types.NewErr("invalid number")
	}
	return types.Double(f)
}

// activation resolves the CEL variables of one evaluation without
// building a map.
type activation Input

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "subject":
		return a.Subject, true
	case "request":
		return &a.Request, true
	case "issuer":
		return a.Issuer, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// errMissing reports that an expression read a claim the subject does not
// have.
var errMissing = errors.New("a claim it reads is missing")

// eval runs prg over in and returns its result, the cost spent and an
// error: errMissing for a missing claim, errCostLimit when the cost limit
// was hit, any other evaluation error as is.
func eval(prg cel.Program, in *Input) (ref.Val, uint64, error) {
	out, det, err := prg.Eval((*activation)(in))
	var spent uint64
	if det != nil && det.ActualCost() != nil {
		spent = *det.ActualCost()
	}
	var cancelled interpreter.EvalCancelledError
	switch {
	case err == nil:
		return out, spent, nil
	case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
		return nil, MaxCost + 1, errCostLimit
	case strings.HasPrefix(err.Error(), "no such key"):
		return nil, spent, errMissing
	}
	return nil, spent, err
}

// toJSON converts a CEL value into the JSON value encoding/json writes:
// bool, string, json.Number, []any, map[string]any. Numbers keep their
// kind and exact value; arrays and objects of the subject pass through as
// they are.
func toJSON(v ref.Val, depth int, budget *int) (any, error) {
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("the result holds more than %d values", maxResultValues)
	}
	if depth > maxResultDepth {
		return nil, fmt.Errorf("the result is nested deeper than %d levels", maxResultDepth)
	}
	switch x := v.(type) {
	case types.Bool:
		return bool(x), nil
	case types.String:
		return string(x), nil
	case types.Int:
		return json.Number(strconv.FormatInt(int64(x), 10)), nil
	case types.Uint:
		return json.Number(strconv.FormatUint(uint64(x), 10)), nil
	case types.Double:
		return doubleJSON(float64(x))
	case types.Null:
		return nil, nil
	}
	switch raw := v.Value().(type) {
	case []any, map[string]any:
		return raw, nil // the subject's own JSON, adapted lazily
	}
	switch x := v.(type) {
	case traits.Lister:
		return listJSON(x, depth, budget)
	case traits.Mapper:
		return mapJSON(x, depth, budget)
	}
	return nil, fmt.Errorf("the result is a %s, which has no JSON form", v.Type().TypeName())
}

func listJSON(l traits.Lister, depth int, budget *int) (any, error) {
	n, _ := l.Size().(types.Int)
	out := make([]any, 0, min(int(n), maxResultValues))
	for it := l.Iterator(); it.HasNext() == types.True; {
		e, err := toJSON(it.Next(), depth+1, budget)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func mapJSON(m traits.Mapper, depth int, budget *int) (any, error) {
	n, _ := m.Size().(types.Int)
	out := make(map[string]any, min(int(n), maxResultValues))
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		key, ok := k.(types.String)
		if !ok {
			return nil, fmt.Errorf("the result is an object with a %s key; JSON object keys are strings", k.Type().TypeName())
		}
		e, err := toJSON(m.Get(k), depth+1, budget)
		if err != nil {
			return nil, err
		}
		out[string(key)] = e
	}
	return out, nil
}

func doubleJSON(f float64) (any, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, errors.New("the result is not a finite number")
	}
	return json.Number(b), nil
}
