package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/policy"
)

// KeyAdmin administers the signing keys; keys.Ring implements it.
type KeyAdmin interface {
	ListKeys(ctx context.Context) ([]keys.Key, error)
	Rotate(ctx context.Context, alg string) ([]keys.Rotation, error)
	Revoke(ctx context.Context, kid, reason string) (keys.RevokeResult, error)
	Schedule() keys.Schedule
	// Algorithms are the configured signing algorithms, the default first.
	Algorithms() []string
	// KeyIDFor is the kid of alg's active key, "" when it has none.
	KeyIDFor(alg string) string
}

var _ KeyAdmin = (*keys.Ring)(nil)

// maxReasonLength bounds the reason of a revoke, recorded in the audit log.
const maxReasonLength = 500

// keyHandlers serve /admin/v1/keys. They never return a private part: the
// view is built field by field from the key's public columns.
type keyHandlers struct {
	keys KeyAdmin
}

// keyView is a signing key as the admin API shows it.
type keyView struct {
	KID         string          `json:"kid"`
	Algorithm   string          `json:"alg"`
	State       string          `json:"state"`
	PublicJWK   json.RawMessage `json:"public_jwk"`
	KEKID       string          `json:"kek_id,omitempty"`
	PublishedAt time.Time       `json:"published_at"`
	ActivatesAt *time.Time      `json:"activates_at,omitempty"`
	ActivatedAt *time.Time      `json:"activated_at,omitempty"`
	RetiredAt   *time.Time      `json:"retired_at,omitempty"`
	RemoveAfter *time.Time      `json:"remove_after,omitempty"`
	RemovedAt   *time.Time      `json:"removed_at,omitempty"`
}

func viewKey(k keys.Key) keyView {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v := keyView{
		KID: k.ID, Algorithm: k.Algorithm, State: k.State, PublicJWK: k.PublicJWK, KEKID: k.KEKID, PublishedAt: k.CreatedAt,
		ActivatedAt: at(k.ActivatedAt), RetiredAt: at(k.RetiredAt), RemovedAt: at(k.RemovedAt),
	}
	if k.State == keys.StateNext {
		v.ActivatesAt = at(k.ActivatesAt)
	}
	if k.State == keys.StateRetired {
		v.RemoveAfter = at(k.RemoveAfter)
	}
	return v
}

// scheduleView is the lifecycle timing, in seconds.
type scheduleView struct {
	RotationPeriod int64 `json:"rotation_period_seconds"`
	LeadTime       int64 `json:"lead_time_seconds"`
	RetireGrace    int64 `json:"retire_grace_seconds"`
	JWKSMaxAge     int64 `json:"jwks_max_age_seconds"`
}

// keyList is the answer of GET /admin/v1/keys.
type keyList struct {
	Items    []keyView    `json:"items"`
	Schedule scheduleView `json:"schedule"`
}

func (h *keyHandlers) available() error {
	if h.keys == nil {
		return newHTTPError(http.StatusServiceUnavailable, "Signing key administration is not available on this listener.", nil)
	}
	return nil
}

func (h *keyHandlers) list(c echo.Context) error {
	if err := h.available(); err != nil {
		return err
	}
	ks, err := h.keys.ListKeys(c.Request().Context())
	if err != nil {
		return keyError(err)
	}
	out := keyList{Items: make([]keyView, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, viewKey(k))
	}
	s := h.keys.Schedule()
	out.Schedule = scheduleView{
		RotationPeriod: int64(s.RotationPeriod.Seconds()), LeadTime: int64(s.LeadTime.Seconds()),
		RetireGrace: int64(s.RetireGrace.Seconds()), JWKSMaxAge: int64(s.MaxAge().Seconds()),
	}
	return c.JSON(http.StatusOK, out)
}

// rotateBody is the optional body of POST /admin/v1/keys:rotate.
type rotateBody struct {
	// Algorithm limits the rotation to one configured algorithm; all by
	// default.
	Algorithm string `json:"algorithm"`
}

type rotationView struct {
	Algorithm string  `json:"algorithm"`
	Created   bool    `json:"created"`
	Key       keyView `json:"key"`
	Replaces  string  `json:"replaces,omitempty"`
	Detail    string  `json:"detail"`
}

// rotate plans a rotation: 202, since the new keys sign only after the
// lead time.
func (h *keyHandlers) rotate(c echo.Context) error {
	if err := h.available(); err != nil {
		return err
	}
	var b rotateBody
	if err := bindOptional(c, &b); err != nil {
		return err
	}
	rs, err := h.keys.Rotate(c.Request().Context(), b.Algorithm)
	if err != nil {
		return keyError(err)
	}
	out := list[rotationView]{Items: []rotationView{}}
	for _, r := range rs {
		out.Items = append(out.Items, rotationView{Algorithm: r.Key.Algorithm, Created: r.Created, Key: viewKey(r.Key), Replaces: r.Replaces, Detail: r.Detail})
	}
	return c.JSON(http.StatusAccepted, out)
}

// revokeBody is the body of POST /admin/v1/keys:revoke.
type revokeBody struct {
	KID    string `json:"kid"`
	Reason string `json:"reason"`
}

// Validate reports every problem of the body.
func (b revokeBody) Validate() error {
	v := &policy.ValidationError{}
	if b.KID == "" {
		v.Add("kid", "is required: the kid of the key to revoke (GET /admin/v1/keys lists them)")
	}
	if utf8.RuneCountInString(b.Reason) > maxReasonLength {
		v.Add("reason", "must be at most %d characters", maxReasonLength)
	}
	return v.Err()
}

type revokeView struct {
	Revoked     keyView  `json:"revoked"`
	Replacement *keyView `json:"replacement,omitempty"`
	Consequence string   `json:"consequence"`
}

// revoke is the emergency revoke: the key leaves the JWKS at once.
func (h *keyHandlers) revoke(c echo.Context) error {
	if err := h.available(); err != nil {
		return err
	}
	var b revokeBody
	if err := bind(c, &b); err != nil {
		return err
	}
	if err := b.Validate(); err != nil {
		return err
	}
	res, err := h.keys.Revoke(c.Request().Context(), b.KID, b.Reason)
	if err != nil {
		return keyError(err)
	}
	out := revokeView{Revoked: viewKey(res.Revoked), Consequence: res.Consequence}
	if res.Replacement != nil {
		r := viewKey(*res.Replacement)
		out.Replacement = &r
	}
	return c.JSON(http.StatusOK, out)
}

// bindOptional is bind for an optional body: an empty one (whatever its
// Content-Type, chunked or not) leaves v as it is.
func bindOptional(c echo.Context, v any) error {
	r := c.Request()
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return bind(c, v)
}

// keyError gives the key errors their status; the chokepoint maps the rest.
func keyError(err error) error {
	switch {
	case errors.Is(err, keys.ErrKeyNotFound):
		return newHTTPError(http.StatusNotFound, "No signing key has this kid.", err)
	case errors.Is(err, keys.ErrKeyGone):
		return newHTTPError(http.StatusConflict, "The signing key is already removed or revoked.", err)
	case errors.Is(err, keys.ErrUnsupportedAlgorithm):
		v := &policy.ValidationError{}
		v.Add("algorithm", "is not one of the configured signing algorithms")
		return errors.Join(v, err)
	}
	return err
}

// addMetrics serves h at /metrics on the admin listener, without
// authentication, like the health checks.
func addMetrics(e *echo.Echo, h http.Handler) {
	e.GET("/metrics", func(c echo.Context) error {
		if h == nil {
			return newHTTPError(http.StatusNotFound, "Metrics are not enabled.", nil)
		}
		h.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
