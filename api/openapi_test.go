package api_test

import (
	"context"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// openAPIPath is the description of both listeners, at the module root.
const openAPIPath = "../openapi.yaml"

// loadOpenAPI loads and validates openapi.yaml (examples included).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIPath)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIPath, err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %q", other, where, op.OperationID)
			}
			ids[op.OperationID] = where
		}
	}
}

// TestOpenAPIDescribesEveryRoute checks that the routes registered on each
// listener are exactly the operations openapi.yaml gives that listener.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	log := slog.New(slog.DiscardHandler)
	ready := func(context.Context) error { return nil }
	listeners := map[string]*echo.Echo{
		// An issuer without a path: the metadata is served at the root only.
		"public": api.NewPublic(api.PublicConfig{
			Issuer: "https://sts.example.com", Exchanger: fakeExchanger{}, Keys: fakeKeys{}, Ready: ready, Logger: log,
		}),
		"admin": api.NewAdmin(api.AdminConfig{
			Store: fakeStore{}, Tokens: []string{"0123456789abcdef"}, Ready: ready, Logger: log,
		}),
	}
	for name, e := range listeners {
		t.Run(name, func(t *testing.T) {
			var served []string
			for _, r := range e.Routes() {
				if r.Method == echo.RouteNotFound { // the group's catch-all for its middleware
					continue
				}
				path := strings.ReplaceAll(echoParam.ReplaceAllString(r.Path, "$1{$2}"), `\:`, ":")
				served = append(served, r.Method+" "+path)
			}
			described := describedRoutes(t, doc, name)
			slices.Sort(served)
			served = slices.Compact(served)
			for _, r := range served {
				if !slices.Contains(described, r) {
					t.Errorf("%s is served by the %s listener but not described in openapi.yaml", r, name)
				}
			}
			for _, r := range described {
				if !slices.Contains(served, r) {
					t.Errorf("%s is described for the %s listener in openapi.yaml but not served", r, name)
				}
			}
		})
	}
}

// echoParam matches a path parameter in echo's syntax; `\:` is a literal
// colon.
var echoParam = regexp.MustCompile(`(^|[^\\]):([A-Za-z0-9_]+)`)

// describedRoutes lists "METHOD /path" for every operation whose servers
// (the operation's, else the path's, else the document's) include the
// listener, as told by each server's x-claimbridge-listener.
func describedRoutes(t *testing.T, doc *openapi3.T, listener string) []string {
	t.Helper()
	var routes []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			servers := doc.Servers
			if item.Servers != nil {
				servers = item.Servers
			}
			if op.Servers != nil {
				servers = *op.Servers
			}
			for _, s := range servers {
				l, _ := s.Extensions["x-claimbridge-listener"].(string)
				if l == "" {
					t.Errorf("%s %s: server %s has no x-claimbridge-listener", method, path, s.URL)
				}
				if l == listener {
					routes = append(routes, method+" "+path)
					break
				}
			}
		}
	}
	slices.Sort(routes)
	return routes
}

// The fakes only let the servers be built: no route is called.

type fakeExchanger struct{}

func (fakeExchanger) Exchange(context.Context, sts.Request) (*sts.Response, error) {
	return nil, &sts.Error{Code: sts.ServerError, Description: "fake"}
}
func (fakeExchanger) ExchangeCached(context.Context, sts.Request) (*sts.Response, error) {
	return nil, &sts.Error{Code: sts.ServerError, Description: "fake"}
}
func (fakeExchanger) Client(string) (*sts.Client, bool) { return nil, false }

type fakeKeys struct{}

func (fakeKeys) JWKS() []byte          { return []byte(`{"keys":[]}`) }
func (fakeKeys) MaxAge() time.Duration { return time.Minute }

type fakeStore struct{}

func (fakeStore) PutIssuer(_ context.Context, i sts.Issuer, _ int64) (sts.Issuer, bool, error) {
	return i, true, nil
}
func (fakeStore) GetIssuer(context.Context, string) (sts.Issuer, error) {
	return sts.Issuer{}, sts.ErrNotFound
}
func (fakeStore) ListIssuers(context.Context) ([]sts.Issuer, error) { return nil, nil }
func (fakeStore) DeleteIssuer(context.Context, string, int64) error { return sts.ErrNotFound }
func (fakeStore) PutClient(_ context.Context, c sts.Client, _ int64) (sts.Client, bool, error) {
	return c, true, nil
}
func (fakeStore) SetClientSecret(context.Context, string, []byte) (sts.Client, error) {
	return sts.Client{}, sts.ErrNotFound
}
func (fakeStore) GetClient(context.Context, string) (sts.Client, error) {
	return sts.Client{}, sts.ErrNotFound
}
func (fakeStore) ListClients(context.Context) ([]sts.Client, error) { return nil, nil }
func (fakeStore) DeleteClient(context.Context, string, int64) error { return sts.ErrNotFound }
func (fakeStore) PutPolicy(_ context.Context, p policy.Policy, _ int64) (policy.Policy, bool, error) {
	return p, true, nil
}
func (fakeStore) GetPolicy(context.Context, string) (policy.Policy, error) {
	return policy.Policy{}, sts.ErrNotFound
}
func (fakeStore) ListPolicies(context.Context) ([]policy.Policy, error) { return nil, nil }
func (fakeStore) DeletePolicy(context.Context, string, int64) error     { return sts.ErrNotFound }
func (fakeStore) AuditLog(context.Context, admin.Query) (admin.Page[admin.AuditEntry], error) {
	return admin.Page[admin.AuditEntry]{}, nil
}
func (fakeStore) PolicyRevisions(context.Context, string, admin.Query) (admin.Page[admin.Revision], error) {
	return admin.Page[admin.Revision]{}, sts.ErrNotFound
}
