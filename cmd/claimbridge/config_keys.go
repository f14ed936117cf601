package main

import (
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/policy"
)

// keyConfig configures the signing keys: algorithms and the lifecycle
// schedule (see keys.Schedule), and the previous KEK during a rewrap.
type keyConfig struct {
	SigningAlgorithm  string        `yaml:"signing_algorithm"`
	SigningAlgorithms stringList    `yaml:"signing_algorithms"`
	RSAKeyBits        int           `yaml:"rsa_key_bits"`
	RotationPeriod    time.Duration `yaml:"key_rotation_period"`
	LeadTime          time.Duration `yaml:"key_lead_time"`
	RetireGrace       time.Duration `yaml:"key_retire_grace"`
	CheckInterval     time.Duration `yaml:"key_check_interval"`
	OldKEKFile        string        `yaml:"old_kek_file"`

	// OldKEK comes only from the environment (CLAIMBRIDGE_OLD_KEK), like
	// the KEK.
	OldKEK string `yaml:"-"`
}

func defaultKeyConfig() keyConfig {
	d := keys.DefaultSchedule()
	return keyConfig{
		SigningAlgorithm: keys.DefaultAlgorithm,
		RSAKeyBits:       keys.RSABits2048,
		RotationPeriod:   d.RotationPeriod,
		LeadTime:         d.LeadTime,
		RetireGrace:      d.RetireGrace,
		CheckInterval:    d.CheckInterval,
	}
}

func (k *keyConfig) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&k.SigningAlgorithm, "signing-algorithm", k.SigningAlgorithm, "algorithm of the default signing key: ES256, RS256, PS256 or EdDSA")
	fs.Var(&k.SigningAlgorithms, "signing-algorithms", "comma-separated further algorithms that keep an active key of their own, for policies that choose one (e.g. RS256,EdDSA)")
	fs.IntVar(&k.RSAKeyBits, "rsa-key-bits", k.RSAKeyBits, "modulus size of new RS256 and PS256 keys: 2048 or 3072")
	fs.DurationVar(&k.RotationPeriod, "key-rotation-period", k.RotationPeriod, "how long a signing key signs before its successor takes over")
	fs.DurationVar(&k.LeadTime, "key-lead-time", k.LeadTime, "how long a new key is published in the JWKS before it signs (at least twice --key-check-interval; caps the JWKS max-age at half of it)")
	fs.DurationVar(&k.RetireGrace, "key-retire-grace", k.RetireGrace, "how long a retired key stays published after it stopped signing (at least the longest token lifetime, 24h, plus --key-check-interval)")
	fs.DurationVar(&k.CheckInterval, "key-check-interval", k.CheckInterval, "how often each replica checks the key schedule and reloads its keys (bounds how late a replica learns of a key change)")
	fs.StringVar(&k.OldKEKFile, "old-kek-file", k.OldKEKFile, "file holding the previous KEK, used only to open keys not yet rewrapped; or set CLAIMBRIDGE_OLD_KEK")
}

// schedule is the key lifecycle timing of c.
func (c *Config) schedule() keys.Schedule {
	return keys.Schedule{
		RotationPeriod:   c.Keys.RotationPeriod,
		LeadTime:         c.Keys.LeadTime,
		RetireGrace:      c.Keys.RetireGrace,
		JWKSMaxAge:       c.JWKSMaxAge,
		MaxTokenLifetime: policy.MaxTokenLifetime,
		CheckInterval:    c.Keys.CheckInterval,
	}
}

// validateKeys reports every problem of the key settings.
func (c *Config) validateKeys() []error {
	var errs []error
	for _, a := range append([]string{c.Keys.SigningAlgorithm}, c.Keys.SigningAlgorithms...) {
		if err := keys.CheckAlgorithm(a); err != nil {
			errs = append(errs, fmt.Errorf("signing-algorithm(s): %w", err))
		}
	}
	if err := keys.CheckRSABits(c.Keys.RSAKeyBits); err != nil {
		errs = append(errs, fmt.Errorf("rsa-key-bits: %w", err))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"key-rotation-period", c.Keys.RotationPeriod}, {"key-lead-time", c.Keys.LeadTime}, {"key-retire-grace", c.Keys.RetireGrace}, {"key-check-interval", c.Keys.CheckInterval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s must be positive", d.name, d.v))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if err := c.schedule().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// ringOptions configures the key ring; oldKEK may be nil.
func (c *Config) ringOptions(oldKEK *keys.KEK, log *slog.Logger) keys.RingOptions {
	return keys.RingOptions{
		Algorithm:  c.Keys.SigningAlgorithm,
		Algorithms: c.Keys.SigningAlgorithms,
		RSABits:    c.Keys.RSAKeyBits,
		Schedule:   c.schedule(),
		OldKEK:     oldKEK,
		Logger:     log,
	}
}

// loadOldKEK reads the previous KEK from CLAIMBRIDGE_OLD_KEK or its file;
// nil when neither is set.
func loadOldKEK(cfg Config) (*keys.KEK, error) {
	switch {
	case cfg.Keys.OldKEK != "":
		k, err := keys.ParseKEK(cfg.Keys.OldKEK)
		if err != nil {
			return nil, fmt.Errorf("CLAIMBRIDGE_OLD_KEK: %w", err)
		}
		return k, nil
	case cfg.Keys.OldKEKFile != "":
		k, err := keys.LoadKEKFile(cfg.Keys.OldKEKFile)
		if err != nil {
			return nil, fmt.Errorf("old-kek-file: %w", err)
		}
		return k, nil
	}
	return nil, nil
}
