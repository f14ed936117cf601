package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// adminClient calls the admin API for `apply` and `get`.
type adminClient struct {
	base  string // …/admin/v1
	token string
	http  *http.Client
}

// adminFlags are the connection flags `apply` and `get` share.
type adminFlags struct {
	url       string
	tokenFile string
}

func (f *adminFlags) bind(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("CLAIMBRIDGE_ADMIN_URL")
	if def == "" {
		def = "http://127.0.0.1:8081"
	}
	fs.StringVar(&f.url, "admin-url", def, "URL of the admin listener (or CLAIMBRIDGE_ADMIN_URL)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding an admin token; default: CLAIMBRIDGE_ADMIN_TOKEN")
}

// client builds the admin client; the token comes from --token-file or
// CLAIMBRIDGE_ADMIN_TOKEN, never from a flag (visible in ps).
func (f *adminFlags) client(getenv func(string) string) (*adminClient, error) {
	token := getenv("CLAIMBRIDGE_ADMIN_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, errors.New("no admin token: set CLAIMBRIDGE_ADMIN_TOKEN or --token-file")
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin-url: %q must be an http(s) URL such as http://127.0.0.1:8081", f.url)
	}
	return &adminClient{
		base:  strings.TrimRight(f.url, "/") + "/admin/v1",
		token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// response is an admin API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; header adds request headers (If-Match, …). Any
// status is returned; only transport failures are errors.
func (a *adminClient) do(ctx context.Context, method, path string, body any, header map[string]string) (response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// expect returns the answer when its status is one of want, else an error
// made of the problem details the API sent.
func (a *adminClient) expect(ctx context.Context, method, path string, body any, header map[string]string, want ...int) (response, error) {
	r, err := a.do(ctx, method, path, body, header)
	if err != nil {
		return r, err
	}
	for _, w := range want {
		if r.status == w {
			return r, nil
		}
	}
	return r, problemError(r)
}

// problemError describes a failed answer, listing the invalid fields.
func problemError(r response) error {
	var p struct {
		Detail string `json:"detail"`
		Errors []struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	msg := fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	if json.Unmarshal(r.body, &p) == nil && p.Detail != "" {
		msg += ": " + p.Detail
		for _, e := range p.Errors {
			msg += fmt.Sprintf("\n    %s: %s", e.Field, e.Reason)
		}
	}
	return errors.New(msg)
}

// list returns every resource of kind k as documents.
func (a *adminClient) list(ctx context.Context, k kindInfo) ([]document, error) {
	r, err := a.expect(ctx, http.MethodGet, "/"+k.path, nil, nil, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", k.path, err)
	}
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		return nil, fmt.Errorf("list %s: %w", k.path, err)
	}
	docs := make([]document, 0, len(l.Items))
	for _, it := range l.Items {
		d, err := specOf(k, it)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// current returns the stored resource as a document, or found false.
func (a *adminClient) current(ctx context.Context, k kindInfo, name string) (d document, found bool, err error) {
	r, err := a.expect(ctx, http.MethodGet, "/"+k.path+"/"+url.PathEscape(name), nil, nil, http.StatusOK, http.StatusNotFound)
	if err != nil || r.status == http.StatusNotFound {
		return document{}, false, err
	}
	d, err = specOf(k, r.body)
	return d, err == nil, err
}

// normalize asks the API (a dry run) what it would store for d.
func (a *adminClient) normalize(ctx context.Context, d document) (document, error) {
	r, err := a.expect(ctx, http.MethodPut, "/"+d.kind.path+"/"+url.PathEscape(d.name)+"?dry_run=true", d.spec, nil, http.StatusOK)
	if err != nil {
		return document{}, err
	}
	return specOf(d.kind, r.body)
}
