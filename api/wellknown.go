package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/sts"
)

// wellKnown serves the JWKS and the authorization server metadata.
type wellKnown struct {
	issuer   string
	path     string // the issuer's path component, "" or "/…"
	keys     KeySet
	metadata func(echo.Context) error
}

func newWellKnown(issuer string, keys KeySet, algs []string) *wellKnown {
	w := &wellKnown{issuer: issuer, keys: keys}
	if len(algs) == 0 {
		algs = []string{"ES256"}
	}
	if u, err := url.Parse(issuer); err == nil {
		w.path = strings.TrimSuffix(u.Path, "/")
	}
	// RFC 8414 §2 metadata; the issuer is identical to the configured one.
	doc, _ := json.Marshal(map[string]any{
		"issuer":                                         issuer,
		"token_endpoint":                                 issuer + "/oauth2/token",
		"jwks_uri":                                       issuer + "/.well-known/jwks.json",
		"grant_types_supported":                          []string{sts.GrantTypeTokenExchange},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"response_types_supported":                       []string{},
		"scopes_supported":                               []string{},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          algs,
		"token_exchange_subject_token_types_supported":   sts.SubjectTokenTypes,
		"token_exchange_requested_token_types_supported": []string{sts.TokenTypeAccessToken, sts.TokenTypeJWT},
	})
	w.metadata = func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		return c.JSONBlob(http.StatusOK, doc)
	}
	return w
}

// metadataPaths are where RFC 8414 §3 and OpenID Connect Discovery look
// for the metadata of our issuer: for https://host/sts these are
// /.well-known/oauth-authorization-server/sts and
// /sts/.well-known/openid-configuration.
func (w *wellKnown) metadataPaths() []string {
	return []string{"/.well-known/oauth-authorization-server" + w.path, w.path + "/.well-known/openid-configuration"}
}

func (w *wellKnown) jwks(c echo.Context) error {
	maxAge := int(w.keys.MaxAge().Seconds())
	c.Response().Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	return c.Blob(http.StatusOK, "application/jwk-set+json", w.keys.JWKS())
}
