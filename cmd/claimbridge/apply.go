package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

const applyUsage = `Usage: claimbridge apply -f DIR|FILE [-f ...] [--dry-run] [--prune] [flags]

Applies YAML (or JSON) documents through the admin API, idempotently:

  apiVersion: claimbridge.dev/v1
  kind: Policy                 # Issuer, Client or Policy (or a List of them)
  metadata:
    name: orders               # the name (an Issuer or Policy) or ID (a Client)
  spec:                        # the admin API's JSON body, as YAML
    audience: https://orders.internal
    ...

Each resource is compared with what is stored (after the server normalized
it, so defaults do not count as changes) and reported as unchanged,
configured or created; a write is conditional on the version compared
(If-Match), so a concurrent change fails it instead of being overwritten.
Every document is validated before anything is written. A new client's
secret is printed once, or written to --secrets-dir.

--dry-run writes nothing and shows a diff of each change.
--prune also deletes the resources of the kinds the files contain (and only
those kinds) that the files do not name: a directory of policies prunes
policies, never clients or issuers.

Flags:
`

// applyFlags are the flags of `claimbridge apply`.
type applyFlags struct {
	files      stringSlice
	dryRun     bool
	prune      bool
	secretsDir string
	admin      adminFlags
}

// stringSlice is a repeatable flag.
type stringSlice []string

func (s *stringSlice) String() string     { return strings.Join(*s, ",") }
func (s *stringSlice) Set(v string) error { *s = append(*s, v); return nil }

// change is what apply does to one resource.
type change struct {
	doc     document
	current *document // nil: absent
	action  string    // unchanged, configured, created, deleted
}

func applyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var f applyFlags
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, applyUsage); fs.PrintDefaults() }
	fs.Var(&f.files, "f", "a file or directory of YAML/JSON documents (repeatable)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "show what would change, with a diff, and change nothing")
	fs.BoolVar(&f.prune, "prune", false, "also delete resources of the kinds in the files that the files do not name")
	fs.StringVar(&f.secretsDir, "secrets-dir", "", "write the secret of each client created to DIR/<id>.secret (mode 0600) instead of printing it")
	f.admin.bind(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(f.files) == 0 || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("apply: give the documents with -f, and nothing else")
	}
	docs, err := readDocuments(f.files)
	if err != nil {
		return err
	}
	client, err := f.admin.client(getenv)
	if err != nil {
		return err
	}
	changes, err := plan(ctx, client, docs, f.prune)
	if err != nil {
		return err
	}
	return f.execute(ctx, client, changes, stdout)
}

// plan compares every document with what is stored and, with prune, lists
// the resources to delete; it writes nothing. Every invalid document is
// reported at once.
func plan(ctx context.Context, client *adminClient, docs []document, prune bool) ([]change, error) {
	var (
		changes []change
		errs    []error
	)
	for _, k := range kinds {
		for _, d := range docs {
			if d.kind != k {
				continue
			}
			c, err := planOne(ctx, client, d)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", d.id(), d.from, err))
				continue
			}
			changes = append(changes, c)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing was applied:\n%w", errors.Join(errs...))
	}
	if !prune {
		return changes, nil
	}
	deletes, err := planPrune(ctx, client, docs)
	return append(changes, deletes...), err
}

func planOne(ctx context.Context, client *adminClient, d document) (change, error) {
	want, err := client.normalize(ctx, d)
	if err != nil {
		return change{}, err
	}
	c := change{doc: want, action: "created"}
	cur, found, err := client.current(ctx, d.kind, d.name)
	if err != nil || !found {
		return c, err
	}
	c.current, c.action = &cur, "configured"
	if reflect.DeepEqual(cur.spec, want.spec) {
		c.action = "unchanged"
	}
	return c, nil
}

// planPrune lists, for each kind present in docs, the stored resources
// that docs do not name; policies go first, issuers last.
func planPrune(ctx context.Context, client *adminClient, docs []document) ([]change, error) {
	var deletes []change
	for _, k := range slices.Backward(kinds) {
		named := map[string]bool{}
		for _, d := range docs {
			if d.kind == k {
				named[d.name] = true
			}
		}
		if len(named) == 0 {
			continue // a kind the files do not contain is never pruned
		}
		stored, err := client.list(ctx, k)
		if err != nil {
			return nil, err
		}
		for _, s := range stored {
			if !named[s.name] {
				deletes = append(deletes, change{doc: s, current: &s, action: "deleted"})
			}
		}
	}
	return deletes, nil
}

// execute carries out (or, in a dry run, shows) each change.
func (f *applyFlags) execute(ctx context.Context, client *adminClient, changes []change, out io.Writer) error {
	suffix := ""
	if f.dryRun {
		suffix = " (dry run)"
	}
	for _, c := range changes {
		if c.action == "unchanged" {
			fmt.Fprintf(out, "%s unchanged\n", c.doc.id())
			continue
		}
		if f.dryRun {
			fmt.Fprintf(out, "%s %s%s\n", c.doc.id(), c.action, suffix)
			printDiff(out, c)
			continue
		}
		note, err := f.write(ctx, client, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.doc.id(), err)
		}
		fmt.Fprintf(out, "%s %s%s\n", c.doc.id(), c.action, note)
	}
	return nil
}

// write makes one change, conditional on the version planned against.
func (f *applyFlags) write(ctx context.Context, client *adminClient, c change) (note string, err error) {
	path := "/" + c.doc.kind.path + "/" + url.PathEscape(c.doc.name)
	switch c.action {
	case "deleted":
		_, err := client.expect(ctx, http.MethodDelete, path, nil, map[string]string{"If-Match": c.current.etag()}, http.StatusNoContent)
		return "", err
	case "created":
		r, err := client.expect(ctx, http.MethodPut, path, c.doc.spec, map[string]string{"If-None-Match": "*"}, http.StatusCreated)
		if err != nil || c.doc.kind.kind != "Client" {
			return "", err
		}
		return f.keepSecret(c.doc.name, r.body)
	}
	_, err = client.expect(ctx, http.MethodPut, path, c.doc.spec, map[string]string{"If-Match": c.current.etag()}, http.StatusOK)
	return "", err
}

// keepSecret shows a new client's secret once: written to the secrets
// directory, or printed.
func (f *applyFlags) keepSecret(id string, body []byte) (string, error) {
	var s struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.Secret == "" {
		return "", fmt.Errorf("the answer holds no client secret: %v", err)
	}
	if f.secretsDir == "" {
		return "; client_secret (shown once, store it now): " + s.Secret, nil
	}
	path := filepath.Join(f.secretsDir, id+".secret")
	if err := os.WriteFile(path, []byte(s.Secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("the client was created but its secret could not be saved (rotate it): %w", err)
	}
	return "; client_secret written to " + path, nil
}

// printDiff shows what a change does to the stored spec.
func printDiff(out io.Writer, c change) {
	var before, after []string
	if c.current != nil {
		before = yamlLines(c.current.spec)
	}
	if c.action != "deleted" {
		after = yamlLines(c.doc.spec)
	}
	for _, l := range diffLines(before, after) {
		fmt.Fprintf(out, "    %s\n", l)
	}
}
