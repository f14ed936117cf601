package keys

import (
	"errors"
	"fmt"
	"time"
)

// Schedule is the timing of the signing key lifecycle:
//
//	next ──(LeadTime)──▶ active ──(RotationPeriod)──▶ retired ──(RetireGrace)──▶ removed
//
// A next key is published LeadTime before it signs; a verifier that honours
// the JWKS Cache-Control max-age can therefore never meet an unknown kid,
// because MaxAge is derived from the schedule: MaxAge = min(JWKSMaxAge,
// LeadTime/2). Every replica reloads its keys at least every CheckInterval
// (and within milliseconds through LISTEN/NOTIFY), and Validate requires
// LeadTime ≥ 2·CheckInterval, so a JWKS fetched from the slowest replica just
// before it learnt of the new key has expired when the key starts signing
// (CheckInterval + MaxAge ≤ LeadTime). A retired key stays published
// RetireGrace after it stopped signing, which Validate requires to cover the
// longest token lifetime plus CheckInterval (a replica may sign with it that
// much longer).
type Schedule struct {
	// RotationPeriod is how long a key signs; a successor is published
	// LeadTime before it ends. Default 30 days.
	RotationPeriod time.Duration
	// LeadTime is how long a key is published before it signs. Default 1h.
	LeadTime time.Duration
	// RetireGrace is how long a retired key stays published after it
	// stopped signing. Default 24h5m: the longest token lifetime plus a
	// margin for clock skew and replicas that learn late.
	RetireGrace time.Duration
	// JWKSMaxAge is the configured upper bound of the JWKS Cache-Control
	// max-age; see MaxAge. Default 5 minutes.
	JWKSMaxAge time.Duration
	// MaxTokenLifetime is the longest lifetime a minted token can have.
	// Default 24h.
	MaxTokenLifetime time.Duration
	// CheckInterval is how often each replica checks the schedule and
	// reloads its keys, whatever LISTEN/NOTIFY delivers. Default 1 minute.
	CheckInterval time.Duration
}

// DefaultSchedule returns the default lifecycle timing.
func DefaultSchedule() Schedule {
	return Schedule{
		RotationPeriod:   30 * 24 * time.Hour,
		LeadTime:         time.Hour,
		RetireGrace:      24*time.Hour + 5*time.Minute,
		JWKSMaxAge:       5 * time.Minute,
		MaxTokenLifetime: 24 * time.Hour,
		CheckInterval:    time.Minute,
	}
}

// withDefaults fills zero fields from DefaultSchedule.
func (s Schedule) withDefaults() Schedule {
	d := DefaultSchedule()
	for _, f := range []struct{ v, def *time.Duration }{
		{&s.RotationPeriod, &d.RotationPeriod}, {&s.LeadTime, &d.LeadTime}, {&s.RetireGrace, &d.RetireGrace},
		{&s.JWKSMaxAge, &d.JWKSMaxAge},
		{&s.MaxTokenLifetime, &d.MaxTokenLifetime}, {&s.CheckInterval, &d.CheckInterval},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return s
}

// MaxAge is the Cache-Control max-age of the JWKS: the configured
// JWKSMaxAge, capped at half the lead time.
func (s Schedule) MaxAge() time.Duration {
	s = s.withDefaults()
	return min(s.JWKSMaxAge, s.LeadTime/2)
}

// Validate reports every inconsistency at once; zero fields take their
// defaults first. Names are those of the serve flags.
func (s Schedule) Validate() error {
	s = s.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"key-rotation-period", s.RotationPeriod}, {"key-lead-time", s.LeadTime}, {"key-retire-grace", s.RetireGrace},
		{"jwks-max-age", s.JWKSMaxAge}, {"key-check-interval", s.CheckInterval},
	} {
		if f.d < 0 {
			add("%s: %s must be positive", f.name, f.d)
		}
	}
	if s.LeadTime < 2*s.CheckInterval {
		add("key-lead-time: %s must be at least twice key-check-interval (%s): a replica may take that long to publish a new key, and the JWKS max-age (at most half the lead time) must still expire before the key signs", s.LeadTime, s.CheckInterval)
	}
	if s.RotationPeriod < 2*s.LeadTime {
		add("key-rotation-period: %s must be at least twice key-lead-time (%s)", s.RotationPeriod, s.LeadTime)
	}
	if s.RetireGrace < s.MaxTokenLifetime+s.CheckInterval {
		add("key-retire-grace: %s must cover the longest token lifetime (%s) plus key-check-interval (%s): a retired key must stay published until every token it signed has expired", s.RetireGrace, s.MaxTokenLifetime, s.CheckInterval)
	}
	return errors.Join(errs...)
}

// activationTime is when a next key may start signing: its planned time,
// and never before the lead time since its publication has passed.
func (s Schedule) activationTime(k Key) time.Time {
	earliest := k.CreatedAt.Add(s.LeadTime)
	if k.ActivatesAt.After(earliest) {
		return k.ActivatesAt
	}
	return earliest
}

// removalTime is when a retired key may leave the JWKS: its planned time,
// and never before the retire grace since it stopped signing has passed.
func (s Schedule) removalTime(k Key) time.Time {
	earliest := k.RetiredAt.Add(s.RetireGrace)
	if k.RemoveAfter.After(earliest) {
		return k.RemoveAfter
	}
	return earliest
}

// successorDue is when an active key needs a published successor.
func (s Schedule) successorDue(active Key) time.Time {
	return active.ActivatedAt.Add(s.RotationPeriod - s.LeadTime)
}
