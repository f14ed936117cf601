package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// Previewer runs the decision of an exchange without minting a token.
type Previewer interface {
	Preview(ctx context.Context, req sts.PreviewRequest) (*sts.Preview, error)
}

var _ Previewer = (*sts.Exchanger)(nil)

// previewPath is POST /admin/v1/policies:preview; echo needs the colon
// escaped, or it would start a path parameter.
const previewPath = "/policies\\:preview"

// previewBody is the body of a preview: the parameters of a token request
// (audience and resource as arrays, scope space-separated), a subject token
// or a claims object, and optionally a policy that is not saved.
type previewBody struct {
	ClientID           string          `json:"client_id"`
	Audience           []string        `json:"audience"`
	Resource           []string        `json:"resource"`
	Scope              string          `json:"scope"`
	RequestedTokenType string          `json:"requested_token_type"`
	SubjectToken       string          `json:"subject_token"`
	SubjectTokenType   string          `json:"subject_token_type"`
	SubjectClaims      json.RawMessage `json:"subject_claims"`
	Issuer             string          `json:"issuer"`
	Policy             *policy.Policy  `json:"policy"`
}

func (b *previewBody) request() sts.PreviewRequest {
	return sts.PreviewRequest{
		ClientID: b.ClientID, Audiences: b.Audience, Resources: b.Resource, Scopes: strings.Fields(b.Scope),
		RequestedTokenType: b.RequestedTokenType, SubjectToken: b.SubjectToken, SubjectTokenType: b.SubjectTokenType,
		SubjectClaims: b.SubjectClaims, Issuer: b.Issuer, Policy: b.Policy,
	}
}

// previewPolicy answers what an exchange would decide and mint, explained;
// nothing is signed or stored. A denial is a 200 with decision "deny".
func previewPolicy(p Previewer) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p == nil {
			return newHTTPError(http.StatusNotImplemented, "Previews are not available on this server.", nil)
		}
		var b previewBody
		if err := bind(c, &b); err != nil {
			return err
		}
		res, err := p.Preview(c.Request().Context(), b.request())
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, res)
	}
}
