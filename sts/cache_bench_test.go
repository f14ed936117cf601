package sts

import (
	"context"
	"testing"
	"time"
)

// BenchmarkExchangeCached is one exchange through the cache: a hit (the
// key's hash, a shard lookup, the snapshot checks and a copy) and a miss
// (the same plus a full exchange; the margin is longer than the token's
// lifetime, so nothing is ever stored). Compare with BenchmarkExchange.
func BenchmarkExchangeCached(b *testing.B) {
	for _, tc := range []struct {
		name   string
		margin time.Duration
	}{
		{"hit", DefaultRefreshMargin},
		{"miss", 48 * time.Hour},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f, req := benchFixture(b)
			f.ex = NewExchanger(f.ring, func() Options {
				o := f.ex.opts
				o.Cache = NewCache(CacheOptions{RefreshMargin: tc.margin, Now: o.Now})
				return o
			}())
			f.ex.Load(f.state)
			ctx := context.Background()
			if _, err := f.ex.ExchangeCached(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.ex.ExchangeCached(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
