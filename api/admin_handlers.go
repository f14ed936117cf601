package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// adminHandlers are straight lines: bind, validate, one store call, render.
type adminHandlers struct {
	store AdminStore
	// keys tells which signing algorithms a policy may name: those with an
	// active key; nil accepts any the policy package knows.
	keys KeyAdmin
}

// issuerBody is the writable part of an issuer.
type issuerBody struct {
	readOnly
	Name       string   `json:"name"`
	URL        string   `json:"issuer"`
	Audiences  []string `json:"audiences"`
	Algorithms []string `json:"algorithms"`
	TokenTypes []string `json:"token_types"`
	JWKSURI    string   `json:"jwks_uri"`
}

func (h *adminHandlers) putIssuer(c echo.Context) error {
	var b issuerBody
	if err := bind(c, &b); err != nil {
		return err
	}
	name := c.Param("name")
	if err := pathName("name", name, b.Name); err != nil {
		return err
	}
	iss := sts.Issuer{Name: name, URL: b.URL, Audiences: b.Audiences, Algorithms: b.Algorithms, TokenTypes: b.TokenTypes, JWKSURI: b.JWKSURI}
	iss.Normalize()
	if err := iss.Validate(); err != nil {
		return err
	}
	return put(c, iss, h.store.PutIssuer, issuerVersion)
}

// clientBody is the writable part of a client.
type clientBody struct {
	readOnly
	ID          string `json:"id"`
	Description string `json:"description"`
}

// clientWithSecret is a client as returned once, when its secret is made.
type clientWithSecret struct {
	sts.Client
	Secret string `json:"client_secret"`
}

// putClient creates a client with a fresh secret, returned in this response
// only, or updates an existing client's description and keeps its secret.
func (h *adminHandlers) putClient(c echo.Context) error {
	var b clientBody
	if err := bind(c, &b); err != nil {
		return err
	}
	id := c.Param("id")
	if err := pathName("id", id, b.ID); err != nil {
		return err
	}
	cl := sts.Client{ID: id, Description: b.Description}
	if err := cl.Validate(); err != nil {
		return err
	}
	if dry, err := dryRun(c); dry || err != nil {
		return writeDryRun(c, cl, err)
	}
	ifVersion, err := writePrecondition(c)
	if err != nil {
		return err
	}
	secret, hash := sts.NewClientSecret()
	cl.SecretHash = hash
	stored, created, err := h.store.PutClient(c.Request().Context(), cl, ifVersion)
	if err != nil {
		return err
	}
	setETag(c, stored.Version)
	if !created {
		return c.JSON(http.StatusOK, stored)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, clientWithSecret{Client: stored, Secret: secret})
}

// rotateClientSecret replaces a client's secret; the old one stops working
// as soon as the change reaches the replicas.
func (h *adminHandlers) rotateClientSecret(c echo.Context) error {
	secret, hash := sts.NewClientSecret()
	stored, err := h.store.SetClientSecret(c.Request().Context(), c.Param("id"), hash)
	if err != nil {
		return err
	}
	setETag(c, stored.Version)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, clientWithSecret{Client: stored, Secret: secret})
}

// putPolicy decodes the body into policy.Policy itself, so that a field
// added there needs no change here. The version and timestamps GET returns
// may be sent back; they are ignored.
func (h *adminHandlers) putPolicy(c echo.Context) error {
	var p policy.Policy
	if err := bind(c, &p); err != nil {
		return err
	}
	name := c.Param("name")
	if err := pathName("name", name, p.Name); err != nil {
		return err
	}
	p.Name, p.Version, p.CreatedAt, p.UpdatedAt = name, 0, time.Time{}, time.Time{}
	if _, err := policy.Compile(p); err != nil {
		return err
	}
	if err := h.checkAlgorithm(p.SigningAlgorithm); err != nil {
		return err
	}
	return put(c, p, h.store.PutPolicy, policyVersion)
}

// put ends a PUT handler once v is valid: a dry run answers v as it would
// be stored; otherwise write stores it under the request's precondition and
// the stored resource is the answer, with its ETag.
func put[T any](c echo.Context, v T, write func(context.Context, T, int64) (T, bool, error), version func(T) int64) error {
	if dry, err := dryRun(c); dry || err != nil {
		return writeDryRun(c, v, err)
	}
	ifVersion, err := writePrecondition(c)
	if err != nil {
		return err
	}
	stored, created, err := write(c.Request().Context(), v, ifVersion)
	if err != nil {
		return err
	}
	setETag(c, version(stored))
	return c.JSON(putStatus(created), stored)
}

func issuerVersion(i sts.Issuer) int64    { return i.Version }
func clientVersion(c sts.Client) int64    { return c.Version }
func policyVersion(p policy.Policy) int64 { return p.Version }

// getOne, listAll and deleteOne are the read and delete handlers every
// resource shares.
func getOne[T any](param string, get func(context.Context, string) (T, error), version func(T) int64) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := get(c.Request().Context(), c.Param(param))
		if err != nil {
			return err
		}
		setETag(c, version(v))
		return c.JSON(http.StatusOK, v)
	}
}

func listAll[T any](list func(context.Context) ([]T, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		items, err := list(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, listOf(items))
	}
}

func deleteOne(param string, del func(context.Context, string, int64) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ifVersion, err := writePrecondition(c)
		if err != nil {
			return err
		}
		if err := del(c.Request().Context(), c.Param(param), ifVersion); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// checkAlgorithm refuses a policy's signing algorithm that could not sign
// now: not configured, or configured but its key not active yet.
func (h *adminHandlers) checkAlgorithm(alg string) error {
	if alg == "" || h.keys == nil {
		return nil
	}
	v := &policy.ValidationError{}
	switch configured := h.keys.Algorithms(); {
	case !slices.Contains(configured, alg):
		v.Add("signing_algorithm", "%q is not configured on this server (configured: %s; see --signing-algorithms)", alg, strings.Join(configured, " "))
	case h.keys.KeyIDFor(alg) == "":
		v.Add("signing_algorithm", "%q has no active key yet: a key of an algorithm added to a running cluster signs after the lead time (claimbridge keys list shows when)", alg)
	default:
		return nil
	}
	return v
}
