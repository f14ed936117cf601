package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// AdminStore is the configuration store behind the admin API. Writes return
// the stored resource and whether it was created; their ifVersion is a
// precondition: 0 for none, a version the resource must be at, or
// admin.IfAbsent / admin.IfExists (sts.ErrPreconditionFailed when it does not
// hold). Writes record the actor the request context carries (admin.WithActor).
type AdminStore interface {
	IssuerStore
	ClientStore
	PolicyStore
	AuditStore
}

// IssuerStore keeps trusted issuers.
type IssuerStore interface {
	PutIssuer(ctx context.Context, iss sts.Issuer, ifVersion int64) (sts.Issuer, bool, error)
	GetIssuer(ctx context.Context, name string) (sts.Issuer, error)
	ListIssuers(ctx context.Context) ([]sts.Issuer, error)
	DeleteIssuer(ctx context.Context, name string, ifVersion int64) error
}

// ClientStore keeps clients; PutClient keeps an existing client's secret.
type ClientStore interface {
	PutClient(ctx context.Context, c sts.Client, ifVersion int64) (sts.Client, bool, error)
	SetClientSecret(ctx context.Context, id string, hash []byte) (sts.Client, error)
	GetClient(ctx context.Context, id string) (sts.Client, error)
	ListClients(ctx context.Context) ([]sts.Client, error)
	DeleteClient(ctx context.Context, id string, ifVersion int64) error
}

// PolicyStore keeps policies.
type PolicyStore interface {
	PutPolicy(ctx context.Context, p policy.Policy, ifVersion int64) (policy.Policy, bool, error)
	GetPolicy(ctx context.Context, name string) (policy.Policy, error)
	ListPolicies(ctx context.Context) ([]policy.Policy, error)
	DeletePolicy(ctx context.Context, name string, ifVersion int64) error
}

// AuditStore reads the record of admin changes, newest first.
type AuditStore interface {
	AuditLog(ctx context.Context, q admin.Query) (admin.Page[admin.AuditEntry], error)
	PolicyRevisions(ctx context.Context, name string, q admin.Query) (admin.Page[admin.Revision], error)
}

// AdminConfig wires the admin listener. At least one of Tokens, ReadTokens
// and JWT must be set, or nobody can use it.
type AdminConfig struct {
	Store AdminStore
	// Tokens are the bearer tokens of the write role (every request).
	Tokens []string
	// ReadTokens are the bearer tokens of the read role (GET only).
	ReadTokens []string
	// JWT, when set, also admits bearers of a JWT from one trusted issuer,
	// with the role its role claim names.
	JWT    *AdminJWT
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// Keys administers the signing keys (/admin/v1/keys); without it those
	// routes answer 503.
	Keys KeyAdmin

	// Preview runs POST /admin/v1/policies:preview; without it that route
	// answers 501.
	Preview Previewer
	// Metrics serves /metrics (Prometheus text format, no authentication,
	// like the health checks); without it /metrics answers 404.
	Metrics http.Handler
}

// maxAdminBodyBytes bounds an admin request body.
const maxAdminBodyBytes = 1 << 20

// NewAdmin returns the admin server: /admin/v1 behind bearer tokens, and
// health checks.
func NewAdmin(cfg AdminConfig) *echo.Echo {
	e := newEcho(cfg.Logger)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if !c.Response().Committed {
			writeProblem(c, err)
		}
	}
	addHealth(e, cfg.Ready)
	addMetrics(e, cfg.Metrics)
	g := e.Group("/admin/v1", newAdminAuth(cfg).middleware)
	s, h := cfg.Store, &adminHandlers{store: cfg.Store, keys: cfg.Keys}
	g.GET("/issuers", listAll(s.ListIssuers))
	g.GET("/issuers/:name", getOne("name", s.GetIssuer, issuerVersion))
	g.PUT("/issuers/:name", h.putIssuer)
	g.DELETE("/issuers/:name", deleteOne("name", s.DeleteIssuer))
	g.GET("/clients", listAll(s.ListClients))
	g.GET("/clients/:id", getOne("id", s.GetClient, clientVersion))
	g.PUT("/clients/:id", h.putClient)
	g.DELETE("/clients/:id", deleteOne("id", s.DeleteClient))
	g.POST("/clients/:id/secret", h.rotateClientSecret)
	g.GET("/policies", listAll(s.ListPolicies))
	g.GET("/policies/:name", getOne("name", s.GetPolicy, policyVersion))
	g.PUT("/policies/:name", h.putPolicy)
	g.DELETE("/policies/:name", deleteOne("name", s.DeletePolicy))
	g.GET("/policies/:name/revisions", h.policyRevisions)
	g.POST(previewPath, previewPolicy(cfg.Preview))
	g.GET("/audit", h.auditLog)
	kh := &keyHandlers{keys: cfg.Keys}
	g.GET("/keys", kh.list)
	g.POST(`/keys\:rotate`, kh.rotate) // a literal colon (AIP-136 custom method)
	g.POST(`/keys\:revoke`, kh.revoke)
	return e
}

// list is the body of every list response.
type list[T any] struct {
	Items []T `json:"items"`
}

func listOf[T any](items []T) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items}
}

// bind decodes a JSON object body strictly: unknown fields and trailing
// data are errors that name what is wrong.
func bind(c echo.Context, v any) error {
	r := c.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return newHTTPError(http.StatusUnsupportedMediaType, "The body must be a JSON object sent as Content-Type: application/json.", nil)
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxAdminBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newHTTPError(http.StatusBadRequest, "The body must hold exactly one JSON object.", nil)
	}
	return nil
}

func bodyError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &syn):
		return newHTTPError(http.StatusBadRequest, "The body is not valid JSON: "+syn.Error()+".", nil)
	case errors.As(err, &typ) && typ.Field == "":
		return newHTTPError(http.StatusBadRequest, "The body must be a JSON object.", nil)
	case errors.As(err, &typ):
		v := &policy.ValidationError{}
		v.Add(typ.Field, "must be %s, not %s", jsonKind(typ.Type.Kind()), typ.Value)
		return v
	case errors.As(err, &mbe):
		return newHTTPError(http.StatusRequestEntityTooLarge, "The body is too large.", nil)
	case errors.Is(err, io.EOF):
		return newHTTPError(http.StatusBadRequest, "The body is empty; a JSON object is required.", nil)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		v := &policy.ValidationError{}
		v.Add(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a known field")
		return v
	default:
		return newHTTPError(http.StatusBadRequest, "The body could not be read.", err)
	}
}

// jsonKind names the JSON type a Go kind decodes from.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	default:
		return "a number"
	}
}

// readOnly are the fields GET returns that a PUT may send back unchanged
// (so that an exported resource can be applied again); they are ignored.
type readOnly struct {
	Version   json.RawMessage `json:"version,omitempty"`
	CreatedAt json.RawMessage `json:"created_at,omitempty"`
	UpdatedAt json.RawMessage `json:"updated_at,omitempty"`
}

// pathName checks that a name in the body, if any, matches the path.
func pathName(field, inPath, inBody string) error {
	if inBody != "" && inBody != inPath {
		v := &policy.ValidationError{}
		v.Add(field, "is %q in the body but %q in the path", inBody, inPath)
		return v
	}
	return nil
}

// putStatus is 201 for a created resource and 200 for an updated one.
func putStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}
