package sts

import (
	"context"

	"github.com/claimbridge/claimbridge/policy"
)

// State is the configuration the exchange serves from, as loaded from the
// store in one consistent read.
type State struct {
	Issuers  []Issuer
	Clients  []Client
	Policies []policy.Policy
}

// StateLoader reads the whole State.
type StateLoader interface {
	LoadState(ctx context.Context) (State, error)
}
