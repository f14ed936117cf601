package verify_test

import (
	"context"
	"errors"
	"testing"

	"github.com/claimbridge/claimbridge/verify"
)

// FuzzVerify: Verify never panics on untrusted input, and every failure
// matches one of the package's sentinels.
func FuzzVerify(f *testing.F) {
	es := newKey(f, "ES256", "es")
	ti := newTestIssuer(f, es)
	clk := newClock()
	v, err := verify.New(context.Background(), verify.Config{Issuer: ti.URL(), Audience: testAudience, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	good := claimsAt(ti.URL(), clk.Now())
	f.Add(es.sign(f, "at+jwt", good))
	f.Add(es.sign(f, "JWT", good))
	f.Add(es.sign(f, "at+jwt", with(good, map[string]any{"exp": "x", "aud": 1})))
	f.Add(es.sign(f, "at+jwt", map[string]any{"exp": 1e300}))
	f.Add(newKey(f, "ES256", "other").sign(f, "at+jwt", good))
	f.Add(es.signBytes(f, "at+jwt", []byte(`[1,2]`)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
	f.Add("a.b.c")
	f.Add("")
	sentinels := []error{verify.ErrMalformed, verify.ErrAlgorithm, verify.ErrType, verify.ErrUnknownKey,
		verify.ErrBadSignature, verify.ErrWrongIssuer, verify.ErrWrongAudience, verify.ErrExpired, verify.ErrNotYetValid}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw)
		if err == nil {
			if tok == nil {
				t.Fatal("no error and no token")
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error matches no sentinel: %v", err)
	})
}
