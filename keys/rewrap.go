package keys

import (
	"context"
	"errors"
	"fmt"
)

// RewrapResult is the outcome of Rewrap.
type RewrapResult struct {
	// KEKID is the KEK every private key is now sealed under.
	KEKID string
	// Rewrapped are the kids of the keys re-sealed.
	Rewrapped []string
	// Unchanged counts the keys already sealed under KEKID, or holding no
	// private part (retired, removed, revoked).
	Unchanged int
}

// Rewrap re-seals every stored private key under to, opening it with the
// KEK among from (or to) that sealed it, in one transaction under the
// cluster-wide keys lock: either every key moves or none does. Replicas
// keep signing throughout, since they hold the opened keys in memory and
// accept either KEK while both are configured.
func Rewrap(ctx context.Context, store LifecycleStore, to *KEK, from ...*KEK) (RewrapResult, error) {
	if store == nil || to == nil {
		return RewrapResult{}, errors.New("keys: rewrap needs a store and the new KEK")
	}
	keks := append([]*KEK{to}, from...)
	var res RewrapResult
	err := store.UpdateKeys(ctx, func(ks []Key) (Changes, error) {
		res = RewrapResult{KEKID: to.ID()}
		c := Changes{Action: "keys.rewrap"}
		for _, k := range ks {
			if len(k.Sealed) == 0 || k.KEKID == to.ID() {
				res.Unchanged++
				continue
			}
			rewrapped, err := rewrap(k, to, keks)
			if err != nil {
				return Changes{}, err
			}
			c.Update = append(c.Update, rewrapped)
			c.Events = append(c.Events, Event{KeyID: k.ID, Algorithm: k.Algorithm, Action: "rewrap",
				Detail: fmt.Sprintf("Private key re-sealed under KEK %s (was %s).", to.ID(), k.KEKID)})
			res.Rewrapped = append(res.Rewrapped, k.ID)
		}
		return c, nil
	})
	if err != nil {
		return RewrapResult{}, fmt.Errorf("keys: rewrap: %w", err)
	}
	return res, nil
}

// rewrap returns k sealed under to, checking the result opens.
func rewrap(k Key, to *KEK, keks []*KEK) (Key, error) {
	der, err := unseal(k, keks)
	if err != nil {
		return Key{}, err
	}
	defer clear(der)
	k.Sealed, k.KEKID = to.seal(der, []byte(k.ID)), to.ID()
	if _, err := Open(k, to); err != nil {
		return Key{}, fmt.Errorf("keys: rewrapped key %q does not open: %w", k.ID, err)
	}
	return k, nil
}
