package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/policy"
)

// auditKinds are the values of the audit log's kind filter.
var auditKinds = []string{admin.KindIssuer, admin.KindClient, admin.KindPolicy, admin.KindKey}

// page is the body of a paged answer, newest first. NextCursor, when
// present, is the cursor of the following page; it is opaque to clients.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func pageOf[T any](p admin.Page[T]) page[T] {
	out := page[T]{Items: p.Items}
	if out.Items == nil {
		out.Items = []T{}
	}
	if p.Next > 0 {
		out.NextCursor = strconv.FormatInt(p.Next, 10)
	}
	return out
}

// auditLog answers GET /audit: a page of the audit log, optionally only the
// entries about one kind of resource and one name.
func (h *adminHandlers) auditLog(c echo.Context) error {
	q, err := pageQuery(c)
	if err != nil {
		return err
	}
	p, err := h.store.AuditLog(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(p))
}

// policyRevisions answers GET /policies/{name}/revisions: a page of the
// policy's history, which outlives its deletion.
func (h *adminHandlers) policyRevisions(c echo.Context) error {
	q, err := pageQuery(c)
	if err != nil {
		return err
	}
	p, err := h.store.PolicyRevisions(c.Request().Context(), c.Param("name"), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pageOf(p))
}

// pageQuery reads ?limit=, ?cursor= and the audit log's filters ?kind= and
// ?name=; every problem is reported at once.
func pageQuery(c echo.Context) (admin.Query, error) {
	q := admin.Query{Kind: c.QueryParam("kind"), Name: c.QueryParam("name")}
	v := &policy.ValidationError{}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > admin.MaxLimit {
			v.Add("limit", "must be an integer between 1 and %d", admin.MaxLimit)
		}
		q.Limit = n
	}
	if s := c.QueryParam("cursor"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			v.Add("cursor", "must be the next_cursor of a previous page")
		}
		q.Before = n
	}
	if q.Kind != "" && !slices.Contains(auditKinds, q.Kind) {
		v.Add("kind", "must be one of %s", strings.Join(auditKinds, ", "))
	}
	return q, v.Err()
}
