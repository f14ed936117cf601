package api

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"

	"github.com/claimbridge/claimbridge/sts"
)

// clientStore is fosite's view of the clients: the exchange snapshot, so
// that authenticating a client never waits on Postgres.
type clientStore struct {
	ex Exchanger
}

var _ fosite.ClientManager = clientStore{}

func (s clientStore) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.ex.Client(id)
	if !ok {
		return nil, fosite.ErrNotFound.WithHint("The client is unknown.")
	}
	return fositeClient{c}, nil
}

// errNoAssertions: no client is registered with private_key_jwt, so fosite
// never reaches the assertion replay store.
var errNoAssertions = errors.New("client assertions (private_key_jwt) are not enabled")

func (clientStore) ClientAssertionJWTValid(context.Context, string) error { return errNoAssertions }

func (clientStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return errNoAssertions
}

// fositeClient presents an sts.Client to fosite: a confidential client
// authenticating with client_secret_basic or client_secret_post.
type fositeClient struct {
	c *sts.Client
}

var _ fosite.Client = fositeClient{}

func (f fositeClient) GetID() string             { return f.c.ID }
func (f fositeClient) GetHashedSecret() []byte   { return f.c.SecretHash }
func (f fositeClient) GetRedirectURIs() []string { return nil }
func (f fositeClient) GetGrantTypes() fosite.Arguments {
	return fosite.Arguments{sts.GrantTypeTokenExchange}
}
func (f fositeClient) GetResponseTypes() fosite.Arguments {
	return nil
}
func (f fositeClient) GetScopes() fosite.Arguments   { return nil }
func (f fositeClient) IsPublic() bool                { return false }
func (f fositeClient) GetAudience() fosite.Arguments { return nil }

// secretHasher checks client secrets with sts.CheckSecret: the secrets are
// server-generated and high-entropy, so a keyed SHA-256 replaces bcrypt and
// costs nanoseconds per request.
type secretHasher struct{}

var _ fosite.Hasher = secretHasher{}

func (secretHasher) Compare(_ context.Context, hash, secret []byte) error {
	if !sts.CheckSecret(hash, string(secret)) {
		return errors.New("client secret mismatch")
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	return sts.HashSecret(string(secret)), nil
}
