// Command loadgen sends token exchange requests (-mode token) or
// forward-auth requests (-mode forward-auth) to a Claimbridge on this
// machine and reports throughput and latency. It refuses any target that is
// not a loopback address and always stops by itself (duration and request
// limits). `loadgen -serve-baseline ADDR JWKS_URL` serves the minimal
// exchange to compare against (see serveBaseline), `loadgen -serve-trivial
// ADDR` the least an HTTP handler can do (see serveTrivial).
package main

import (
	"context"
	"encoding/json"
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
	switch {
	case len(os.Args) == 4 && os.Args[1] == "-serve-baseline":
		err = serveBaseline(ctx, os.Args[2], os.Args[3], 5*time.Minute)
	case len(os.Args) == 3 && os.Args[1] == "-serve-trivial":
		err = serveTrivial(ctx, os.Args[2], 5*time.Minute)
	default:
		err = run(ctx, os.Args[1:], os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	mode        string // token or forward-auth
	target      string
	client      string
	secret      string
	audience    string
	subjects    []string // one per worker, or one for all
	concurrency int
	duration    time.Duration
	maxRequests int64
}

// subject is worker i's subject token.
func (c *config) subject(i int) string { return c.subjects[i%len(c.subjects)] }

func parse(args []string) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	mode := fs.String("mode", "token", "token (POST the token endpoint) or forward-auth (GET /forward-auth)")
	target := fs.String("url", "http://127.0.0.1:8080/oauth2/token", "token endpoint or /forward-auth URL (loopback only)")
	client := fs.String("client", "dev-gateway", "client id")
	secretFile := fs.String("secret-file", ".claimbridge/dev/client-secret", "file holding the client secret")
	subjectFile := fs.String("subject-file", "", "file holding the subject token every worker sends")
	subjectURL := fs.String("subject-url", "", "instead of -subject-file: a dev IdP /token URL (loopback only) that mints each worker a subject token of its own (sub=loadgen-N)")
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
	if *mode != "token" && *mode != "forward-auth" {
		return config{}, fmt.Errorf("--mode %q: token or forward-auth", *mode)
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return config{}, err
	}
	subjects, err := loadSubjects(*subjectFile, *subjectURL, *concurrency)
	if err != nil {
		return config{}, err
	}
	return config{
		mode: *mode, target: *target, client: *client, secret: strings.TrimSpace(string(secret)), audience: *audience,
		subjects: subjects, concurrency: *concurrency, duration: *duration, maxRequests: *maxRequests,
	}, nil
}

// loadSubjects reads the one subject token of file, or mints n distinct
// ones at the dev IdP's token URL.
func loadSubjects(file, idpURL string, n int) ([]string, error) {
	if idpURL == "" {
		subject, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--subject-file: %w", err)
		}
		return []string{strings.TrimSpace(string(subject))}, nil
	}
	u, err := url.Parse(idpURL)
	if err != nil || !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("--subject-url %q: only loopback URLs are allowed", idpURL)
	}
	out := make([]string, n)
	for i := range out {
		q := u.Query()
		q.Set("sub", fmt.Sprintf("loadgen-%d", i))
		u.RawQuery = q.Encode()
		resp, err := http.Get(u.String())
		if err != nil {
			return nil, err
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || body.AccessToken == "" {
			return nil, fmt.Errorf("--subject-url: no access_token in the answer (%v)", err)
		}
		out[i] = body.AccessToken
	}
	return out, nil
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
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency}}
	var (
		sent, failed atomic.Int64
		mu           sync.Mutex
		latencies    []time.Duration
		wg           sync.WaitGroup
	)
	start := time.Now()
	for w := range cfg.concurrency {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil && sent.Add(1) <= cfg.maxRequests {
				t0 := time.Now()
				if err := send(ctx, client, &cfg, w); err != nil {
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

// send makes worker w's next request and checks for a 200.
func send(ctx context.Context, client *http.Client, cfg *config, w int) error {
	var req *http.Request
	var err error
	if cfg.mode == "forward-auth" {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, cfg.target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Claimbridge-Client", cfg.client+":"+cfg.secret)
		req.Header.Set("X-Claimbridge-Audience", cfg.audience)
		req.Header.Set("Authorization", "Bearer "+cfg.subject(w))
	} else {
		form := url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {cfg.subject(w)},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"audience":           {cfg.audience},
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, cfg.target, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(cfg.client, cfg.secret)
	}
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
	fmt.Fprintf(out, "concurrency %d, %s: %d ok, %d failed, %.0f requests/s, p50 %s, p90 %s, p99 %s\n",
		conc, elapsed.Round(time.Millisecond), len(lat), failed, float64(len(lat))/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.90).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}
