// Package verify checks the access tokens Claimbridge mints, for the
// upstreams that receive them: a JWKS-backed Verifier (signature with an
// algorithm allow-list, iss, aud, exp/nbf with a bounded skew, the RFC 9068
// typ "at+jwt") and net/http middleware that puts the verified Token in the
// request's context.
//
//	v, err := verify.New(ctx, verify.Config{
//		Issuer:   "https://sts.example.com",
//		Audience: "https://orders.internal",
//	})
//	if err != nil { … }
//	http.Handle("/", v.Middleware(handler)) // handler: verify.FromContext(r.Context())
//
// The keys come from the issuer's /.well-known/openid-configuration (or a
// fixed JWKS URL), are cached for the JWKS response's Cache-Control max-age
// (between one minute and one day) and are refetched on an unknown key ID at
// most once per Config.RefreshInterval. A token's kid, jku or x5u never
// chooses where keys come from.
//
// The package is imported by other people's services: it depends on the
// standard library and github.com/go-jose/go-jose/v4 only, and imports no
// other Claimbridge package.
package verify
