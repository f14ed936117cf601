package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// adminHandlers are straight lines: bind, validate, one store call, render.
type adminHandlers struct {
	store AdminStore
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
	stored, created, err := h.store.PutIssuer(c.Request().Context(), iss)
	if err != nil {
		return err
	}
	return c.JSON(putStatus(created), stored)
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
	secret, hash := sts.NewClientSecret()
	cl.SecretHash = hash
	stored, created, err := h.store.PutClient(c.Request().Context(), cl)
	if err != nil {
		return err
	}
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
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, clientWithSecret{Client: stored, Secret: secret})
}

// policyBody is the writable part of a policy.
type policyBody struct {
	readOnly
	Name                 string                `json:"name"`
	Audience             string                `json:"audience"`
	AllowedClients       []string              `json:"allowed_clients"`
	AllowedIssuers       []string              `json:"allowed_issuers"`
	Claims               []policy.ClaimMapping `json:"claims"`
	Scopes               []string              `json:"scopes"`
	TokenLifetimeSeconds int64                 `json:"token_lifetime_seconds"`
}

func (h *adminHandlers) putPolicy(c echo.Context) error {
	var b policyBody
	if err := bind(c, &b); err != nil {
		return err
	}
	name := c.Param("name")
	if err := pathName("name", name, b.Name); err != nil {
		return err
	}
	p := policy.Policy{
		Name: name, Audience: b.Audience, AllowedClients: b.AllowedClients, AllowedIssuers: b.AllowedIssuers,
		Claims: b.Claims, Scopes: b.Scopes, TokenLifetimeSeconds: b.TokenLifetimeSeconds,
	}
	if _, err := policy.Compile(p); err != nil {
		return err
	}
	stored, created, err := h.store.PutPolicy(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(putStatus(created), stored)
}

// getOne, listAll and deleteOne are the read and delete handlers every
// resource shares.
func getOne[T any](param string, get func(context.Context, string) (T, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := get(c.Request().Context(), c.Param(param))
		if err != nil {
			return err
		}
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

func deleteOne(param string, del func(context.Context, string) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := del(c.Request().Context(), c.Param(param)); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}
