package main

import (
	"flag"
	"fmt"
	"net/url"

	"github.com/claimbridge/claimbridge/api"
)

// adminJWT configures admins who authenticate with a JWT from a trusted
// issuer instead of a static token (see api.AdminJWT).
type adminJWT struct {
	Issuer    string `yaml:"admin_jwt_issuer"`
	Audience  string `yaml:"admin_jwt_audience"`
	RoleClaim string `yaml:"admin_jwt_role_claim"`
	WriteRole string `yaml:"admin_jwt_write_role"`
	ReadRole  string `yaml:"admin_jwt_read_role"`
}

func (j *adminJWT) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&j.Issuer, "admin-jwt-issuer", j.Issuer, "issuer URL of the IdP whose JWTs also authenticate admins (OpenID discovery); empty: static tokens only")
	fs.StringVar(&j.Audience, "admin-jwt-audience", j.Audience, "audience an admin JWT must carry (required with --admin-jwt-issuer)")
	fs.StringVar(&j.RoleClaim, "admin-jwt-role-claim", j.RoleClaim, "top-level claim of an admin JWT listing its roles (array, or space-separated string)")
	fs.StringVar(&j.WriteRole, "admin-jwt-write-role", j.WriteRole, "role value that grants the write role (every admin request)")
	fs.StringVar(&j.ReadRole, "admin-jwt-read-role", j.ReadRole, "role value that grants the read role (GET only); empty: none")
}

// validate reports every problem of the JWT admin settings.
func (j *adminJWT) validate(dev bool) []error {
	if j.Issuer == "" {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	u, err := url.Parse(j.Issuer)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		add("admin-jwt-issuer: %q must be an absolute http(s) URL", j.Issuer)
	case u.Scheme == "http" && !dev && !isLoopback(u.Hostname()):
		add("admin-jwt-issuer: %q must use https outside --dev (plain http is only for loopback)", j.Issuer)
	}
	if j.Audience == "" {
		add("admin-jwt-audience: required with admin-jwt-issuer, or a token the IdP minted for any application would be accepted")
	}
	if j.RoleClaim == "" {
		add("admin-jwt-role-claim: required with admin-jwt-issuer")
	}
	if j.WriteRole == "" && j.ReadRole == "" {
		add("admin-jwt-write-role, admin-jwt-read-role: at least one is required with admin-jwt-issuer")
	}
	if j.WriteRole != "" && j.WriteRole == j.ReadRole {
		add("admin-jwt-read-role: must differ from admin-jwt-write-role")
	}
	return errs
}

// api returns the API's settings, or nil when JWT admins are off.
func (j *adminJWT) api() *api.AdminJWT {
	if j.Issuer == "" {
		return nil
	}
	return &api.AdminJWT{Issuer: j.Issuer, Audience: j.Audience, RoleClaim: j.RoleClaim, WriteRole: j.WriteRole, ReadRole: j.ReadRole}
}

// validateAdminTokens checks the static admin tokens of both roles: long
// enough, and none in both lists.
func validateAdminTokens(write, read []string) []error {
	var errs []error
	check := func(name string, tokens []string) {
		for i, t := range tokens {
			if len(t) < 16 {
				errs = append(errs, fmt.Errorf("%s[%d]: must be at least 16 characters", name, i))
			}
		}
	}
	check("admin-tokens", write)
	check("admin-read-tokens", read)
	for i, t := range read {
		for _, w := range write {
			if t == w {
				errs = append(errs, fmt.Errorf("admin-read-tokens[%d]: is also an admin token of the write role", i))
			}
		}
	}
	return errs
}
