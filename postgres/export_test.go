package postgres

import "time"

// SetClock replaces the store's clock, for tests that check timestamps.
func SetClock(s *Store, now func() time.Time) { s.now = now }
