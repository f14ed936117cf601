// Command loadgen sends token exchange requests to a Claimbridge on this
// machine and reports throughput and latency. It refuses any target that is
// not a loopback address and always stops by itself (duration and request
// limits). `loadgen -serve-baseline ADDR JWKS_URL` serves the minimal
// exchange to compare against (see serveBaseline).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if len(os.Args) == 4 && os.Args[1] == "-serve-baseline" {
		err = serveBaseline(ctx, os.Args[2], os.Args[3], 5*time.Minute)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	target      string
	client      string
	secret      string
	form        url.Values
	concurrency int
	duration    time.Duration
	maxRequests int64
}

func parse(args []string) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080/oauth2/token", "token endpoint (loopback only)")
	client := fs.String("client", "dev-gateway", "client id")
	secretFile := fs.String("secret-file", ".claimbridge/dev/client-secret", "file holding the client secret")
	subjectFile := fs.String("subject-file", "", "file holding the subject token")
	audience := fs.String("audience", "https://orders.internal", "audience to request")
	concurrency := fs.Int("concurrency", 16, "concurrent connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (at most 2m)")
	maxRequests := fs.Int64("requests", 200000, "stop after this many requests")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	u, err := url.Parse(*target)
	if err != nil || !isLoopback(u.Hostname()) {
		return config{}, fmt.Errorf("--url %q: only loopback targets are allowed", *target)
	}
	if *duration <= 0 || *duration > 2*time.Minute || *concurrency < 1 || *concurrency > 512 || *maxRequests < 1 {
		return config{}, errors.New("--duration must be in (0, 2m], --concurrency in [1, 512], --requests ≥ 1")
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return config{}, err
	}
	subject, err := os.ReadFile(*subjectFile)
	if err != nil {
		return config{}, fmt.Errorf("--subject-file: %w", err)
	}
	return config{
		target: *target, client: *client, secret: strings.TrimSpace(string(secret)),
		form: url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {strings.TrimSpace(string(subject))},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"audience":           {*audience},
		},
		concurrency: *concurrency, duration: *duration, maxRequests: *maxRequests,
	}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parse(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	body := cfg.form.Encode()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency}}
	var (
		sent, failed atomic.Int64
		mu           sync.Mutex
		latencies    []time.Duration
		wg           sync.WaitGroup
	)
	start := time.Now()
	for range cfg.concurrency {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil && sent.Add(1) <= cfg.maxRequests {
				t0 := time.Now()
				if err := exchange(ctx, client, cfg, body); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	report(out, latencies, failed.Load(), elapsed, cfg.concurrency)
	return nil
}

func exchange(ctx context.Context, client *http.Client, cfg config, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.target, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.client, cfg.secret)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func report(out io.Writer, lat []time.Duration, failed int64, elapsed time.Duration, conc int) {
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Fprintf(out, "concurrency %d, %s: %d ok, %d failed, %.0f exchanges/s, p50 %s, p90 %s, p99 %s\n",
		conc, elapsed.Round(time.Millisecond), len(lat), failed, float64(len(lat))/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}
