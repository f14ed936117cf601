package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/sts"
)

// KeySet publishes the signing keys.
type KeySet interface {
	JWKS() []byte
	MaxAge() time.Duration
}

// PublicConfig wires the public listener.
type PublicConfig struct {
	// Issuer is our issuer URL, exactly as it appears in minted tokens.
	Issuer    string
	Exchanger Exchanger
	Keys      KeySet
	// SigningAlgorithms are the algorithms minted tokens may be signed
	// with, for the metadata; ["ES256"] when empty.
	SigningAlgorithms []string
	// ForwardAuth configures /forward-auth.
	ForwardAuth ForwardAuthConfig
	// Ready reports whether the server can serve exchanges: a snapshot is
	// loaded and a signing key is active.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// NewPublic returns the public server: the token endpoint, forward-auth,
// the well-known documents and health checks.
func NewPublic(cfg PublicConfig) *echo.Echo {
	e := newEcho(cfg.Logger)
	// An issuer with a path (https://host/sts) serves its endpoints under
	// that path, where its metadata says they are.
	wk := newWellKnown(cfg.Issuer, cfg.Keys, cfg.SigningAlgorithms)
	tok := newTokenEndpoint(cfg.Exchanger, cfg.Issuer+"/oauth2/token")
	e.POST(wk.path+"/oauth2/token", func(c echo.Context) error {
		if err := tok.handle(c); err != nil {
			writeOAuthError(c, err)
		}
		return nil
	})
	fa := newForwardAuth(cfg.Exchanger, cfg.ForwardAuth)
	e.Pre(rewriteForwardAuth(wk.path + "/forward-auth"))
	e.GET(wk.path+"/forward-auth", func(c echo.Context) error {
		if err := fa.handle(c); err != nil {
			writeForwardAuthError(c, err)
		}
		return nil
	})
	e.GET(wk.path+"/.well-known/jwks.json", wk.jwks)
	for _, p := range wk.metadataPaths() {
		e.GET(p, wk.metadata)
	}
	addHealth(e, cfg.Ready)
	return e
}

func addHealth(e *echo.Echo, ready func(ctx context.Context) error) {
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if err := ready(c.Request().Context()); err != nil {
			setLogError(c, err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
}

func newEcho(log *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer address: X-Forwarded-For is the client's to forge.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(accessLog(log), recoverPanics(log))
	return e
}

// Keys under which handlers leave details for the access line.
const (
	logAttrsKey    = "claimbridge.log_attrs"
	logErrorKey    = "claimbridge.log_error"
	logExchangeKey = "claimbridge.log_exchange"
)

func setLogError(c echo.Context, err error) { c.Set(logErrorKey, err) }

// setExchangeLog records the exchange for the access line, which describes
// it only when that line is written (see exchangeAttrs).
func setExchangeLog(c echo.Context, r *sts.Response) {
	if r != nil {
		c.Set(logExchangeKey, r)
	}
}

// exchangeAttrs describe what an exchange did: never a token, and the
// subject only as a hash.
func exchangeAttrs(r *sts.Response) []slog.Attr {
	sum := sha256.Sum256([]byte(r.Subject))
	return []slog.Attr{
		slog.String("issuer", r.Issuer), slog.String("policy", r.Policy), slog.String("audience", r.Audience),
		slog.String("jti", r.JTI), slog.String("sub_hash", hex.EncodeToString(sum[:8])), slog.Bool("cached", r.Cached),
	}
}

// accessLog writes one line per request: warn for 4xx, error for 5xx.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // renders through the server's error handler
			}
			status := c.Response().Status
			level := slog.LevelInfo
			switch {
			case status >= 500:
				level = slog.LevelError
			case status >= 400:
				level = slog.LevelWarn
			}
			r := c.Request()
			ctx := r.Context()
			if !log.Enabled(ctx, level) {
				return nil
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Duration("took", time.Since(start)), slog.String("remote", c.RealIP()),
			}
			if a, ok := c.Get(logAttrsKey).([]slog.Attr); ok {
				attrs = append(attrs, a...)
			}
			if x, ok := c.Get(logExchangeKey).(*sts.Response); ok {
				attrs = append(attrs, exchangeAttrs(x)...)
			}
			if le, ok := c.Get(logErrorKey).(error); ok {
				attrs = append(attrs, slog.String("err", le.Error()))
			}
			if cl, ok := c.Get(clientIDKey).(string); ok {
				attrs = append(attrs, slog.String("client_id", cl))
			}
			log.LogAttrs(ctx, level, "request", attrs...)
			return nil
		}
	}
}

const clientIDKey = "claimbridge.client_id"

func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					log.ErrorContext(c.Request().Context(), "handler panic", "panic", p, "path", c.Request().URL.Path)
					err = echo.NewHTTPError(http.StatusInternalServerError, "internal error")
				}
			}()
			return next(c)
		}
	}
}
