package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadSpec parses openapi.yaml once, ignoring its server URLs so that the
// tests' random ports match.
func loadSpec() (routers.Router, error) {
	specOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile("../../openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		if specErr = doc.Validate(context.Background()); specErr != nil {
			return
		}
		doc.Servers = nil
		for _, item := range doc.Paths.Map() {
			item.Servers = nil
		}
		specRouter, specErr = gorillamux.NewRouter(doc)
	})
	return specRouter, specErr
}

// specTransport checks every request the end-to-end tests send, and every
// response they get, against openapi.yaml: the spec stays true or the tests
// fail.
type specTransport struct {
	t      *testing.T
	router routers.Router
}

func newSpecTransport(t *testing.T) http.RoundTripper {
	if _, err := os.Stat("../../openapi.yaml"); err != nil {
		return http.DefaultTransport
	}
	router, err := loadSpec()
	require.NoError(t, err, "openapi.yaml")
	return &specTransport{t: t, router: router}
}

func (s *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		s.t.Errorf("openapi.yaml does not describe %s %s: %v", req.Method, req.URL.Path, err)
		return http.DefaultTransport.RoundTrip(req)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req.Clone(req.Context()), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
	// Some requests are malformed on purpose: a request must match the spec
	// when the server accepted it; every response must match always.
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)

	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: in.Options,
	}
	if reqErr != nil && resp.StatusCode < 300 {
		s.t.Errorf("%s %s was accepted but does not match openapi.yaml: %v", req.Method, req.URL.Path, reqErr)
	}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		s.t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}
