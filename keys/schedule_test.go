package keys

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScheduleMaxAge(t *testing.T) {
	tests := []struct {
		name            string
		maxAge, lead    time.Duration
		wantJWKSMaxAage time.Duration
	}{
		{"defaults: the configured max-age", 0, 0, 5 * time.Minute},
		{"configured max-age below half the lead time", time.Minute, time.Hour, time.Minute},
		{"capped at half the lead time", 2 * time.Hour, time.Hour, 30 * time.Minute},
		{"exactly half", 30 * time.Minute, time.Hour, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Schedule{JWKSMaxAge: tt.maxAge, LeadTime: tt.lead}
			require.Equal(t, tt.wantJWKSMaxAage, s.MaxAge())
			require.LessOrEqual(t, s.MaxAge()+s.withDefaults().CheckInterval, s.withDefaults().LeadTime,
				"a copy fetched from the slowest replica expires before the key signs")
		})
	}
}

func TestScheduleValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Schedule)
		want   []string // flag names in the error, in order; none: valid
	}{
		{"defaults", func(*Schedule) {}, nil},
		{"zero fields take defaults", func(s *Schedule) { *s = Schedule{} }, nil},
		{"lead time shorter than two checks", func(s *Schedule) { s.LeadTime = 110 * time.Second }, []string{"key-lead-time"}},
		{"period shorter than two lead times", func(s *Schedule) { s.RotationPeriod = 90 * time.Minute }, []string{"key-rotation-period"}},
		{"grace shorter than tokens live", func(s *Schedule) { s.RetireGrace = 24 * time.Hour }, []string{"key-retire-grace"}},
		{"negative", func(s *Schedule) { s.JWKSMaxAge = -time.Second }, []string{"jwks-max-age"}},
		{"every problem at once", func(s *Schedule) {
			s.LeadTime, s.RotationPeriod, s.RetireGrace = 10*time.Second, 15*time.Second, time.Hour
		}, []string{"key-lead-time", "key-rotation-period", "key-retire-grace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSchedule()
			tt.mutate(&s)
			err := s.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var got []string
			for _, line := range strings.Split(err.Error(), "\n") {
				got = append(got, strings.SplitN(line, ":", 2)[0])
			}
			require.Equal(t, tt.want, got, err.Error())
		})
	}
}
