package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/sts"
)

// setETag sets the strong entity tag of a resource at version: "<version>".
// A put that changes nothing keeps the version, so the tag is stable.
func setETag(c echo.Context, version int64) {
	c.Response().Header().Set("ETag", `"`+strconv.FormatInt(version, 10)+`"`)
}

// writePrecondition turns the conditional headers of a PUT or DELETE
// (RFC 9110 §13.1) into the store's ifVersion: If-Match: "<version>" is
// that version, If-Match: * is admin.IfExists, If-None-Match: * (PUT only)
// is admin.IfAbsent, and no header is 0 (unconditional). An entity tag that
// can never match one of ours (weak, or not a version) fails at once.
func writePrecondition(c echo.Context) (int64, error) {
	r := c.Request()
	match := strings.TrimSpace(r.Header.Get("If-Match"))
	noneMatch := strings.TrimSpace(r.Header.Get("If-None-Match"))
	switch {
	case match != "" && noneMatch != "":
		return 0, newHTTPError(http.StatusBadRequest, "Send If-Match or If-None-Match, not both.", nil)
	case noneMatch != "":
		if noneMatch != "*" || r.Method != http.MethodPut {
			return 0, newHTTPError(http.StatusBadRequest, "If-None-Match is supported only as * on PUT, to create a resource that must not exist yet.", nil)
		}
		return admin.IfAbsent, nil
	case match == "":
		return 0, nil
	case match == "*":
		return admin.IfExists, nil
	case strings.Contains(match, ","):
		return 0, newHTTPError(http.StatusBadRequest, "If-Match must hold one entity tag (such as \"3\", from the ETag of a GET) or *.", nil)
	case strings.HasPrefix(match, "W/"):
		return 0, fmt.Errorf("If-Match %s is a weak entity tag, which never matches: %w", match, sts.ErrPreconditionFailed)
	case len(match) < 2 || match[0] != '"' || match[len(match)-1] != '"':
		return 0, newHTTPError(http.StatusBadRequest, "If-Match must be a quoted entity tag (such as \"3\", from the ETag of a GET) or *.", nil)
	}
	v, err := strconv.ParseInt(match[1:len(match)-1], 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("If-Match %s matches no version: %w", match, sts.ErrPreconditionFailed)
	}
	return v, nil
}

// dryRun reports whether a PUT asks for a dry run (?dry_run=true).
func dryRun(c echo.Context) (bool, error) {
	q := c.QueryParam("dry_run")
	if q == "" {
		return false, nil
	}
	dry, err := strconv.ParseBool(q)
	if err != nil {
		return false, newHTTPError(http.StatusBadRequest, "dry_run must be true or false.", nil)
	}
	return dry, nil
}

// writeDryRun answers a dry run, unless err: v, valid and normalized as it
// would be stored, without the fields the store sets (version and
// timestamps). Nothing is written.
func writeDryRun(c echo.Context, v any, err error) error {
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	delete(fields, "version")
	delete(fields, "created_at")
	delete(fields, "updated_at")
	return c.JSON(http.StatusOK, fields)
}
