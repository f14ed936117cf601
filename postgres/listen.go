package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Reconnect delays of a Listener: doubled after every failed attempt, from
// minBackoff up to maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Listener delivers the changes announced on NotifyChannel over a dedicated
// connection, restoring it when it is lost.
type Listener struct {
	// DatabaseURL is the database to listen on.
	DatabaseURL string
	// OnChange is called, on the listener's goroutine, with the kind of each
	// change (ChangeIssuers, …), and with ChangeReconnect once listening
	// again after any connection failure (including failed first attempts),
	// since changes may have been missed meanwhile.
	OnChange func(kind string)
	// Listening, if set, is called each time LISTEN has taken effect: from
	// then on no change is missed until the connection is lost. A caller that
	// loads the state after the first call misses nothing.
	Listening func()
	// Log receives connection losses (warn) and recoveries (info); nil
	// discards them.
	Log *slog.Logger
}

// Run listens until ctx ends, then returns nil. A lost or refused connection
// is logged and retried with capped exponential backoff; only a database URL
// that cannot be parsed is returned as an error.
func (l *Listener) Run(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(l.DatabaseURL)
	if err != nil {
		return fmt.Errorf("postgres listener: parse database URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "claimbridge-listener"
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff, failed := minBackoff, false
	for {
		ok, err := l.listen(ctx, cfg, failed, log)
		if ctx.Err() != nil {
			return nil
		}
		if ok {
			backoff = minBackoff
		}
		failed = true
		log.WarnContext(ctx, "postgres listener: connection lost, reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen connects, listens and delivers notifications until the connection
// fails or ctx ends; ok reports whether LISTEN took effect. reconnect says
// that an attempt failed before, so changes may have been missed.
func (l *Listener) listen(ctx context.Context, cfg *pgx.ConnConfig, reconnect bool, log *slog.Logger) (ok bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return false, err
	}
	if l.Listening != nil {
		l.Listening()
	}
	if reconnect {
		log.InfoContext(ctx, "postgres listener: reconnected", "channel", NotifyChannel)
		l.OnChange(ChangeReconnect)
	} else {
		log.InfoContext(ctx, "postgres listener: listening", "channel", NotifyChannel)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		l.OnChange(n.Payload)
	}
}
