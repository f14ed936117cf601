package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

const getUsage = `Usage: claimbridge get issuers|clients|policies|all [NAME] [-o yaml|json] [flags]

Prints the stored resources in the format of 'claimbridge apply', without
the fields the server sets (version, timestamps), so that

  claimbridge get all -o yaml > state.yaml && claimbridge apply -f state.yaml

reports every resource unchanged. -o json prints one List document.

Flags:
`

// kindAliases maps the words `get` accepts to kinds.
var kindAliases = map[string]string{
	"issuer": "Issuer", "issuers": "Issuer",
	"client": "Client", "clients": "Client",
	"policy": "Policy", "policies": "Policy",
}

func getCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		admin  adminFlags
		output string
	)
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, getUsage); fs.PrintDefaults() }
	fs.StringVar(&output, "o", "yaml", "output format: yaml or json")
	admin.bind(fs, getenv)
	// Flags may follow the kind: claimbridge get policies -o yaml.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional, rest = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	selected, name, err := selectKinds(positional)
	if err == nil && output != "yaml" && output != "json" {
		err = fmt.Errorf("-o must be yaml or json, not %q", output)
	}
	if err != nil {
		fs.Usage()
		return fmt.Errorf("get: %w", err)
	}
	client, err := admin.client(getenv)
	if err != nil {
		return err
	}
	docs, err := fetch(ctx, client, selected, name)
	if err != nil {
		return err
	}
	return writeDocuments(stdout, docs, output)
}

// selectKinds reads KIND [NAME].
func selectKinds(args []string) ([]kindInfo, string, error) {
	if len(args) == 0 || len(args) > 2 {
		return nil, "", errors.New("give one of issuers, clients, policies or all, and at most a name")
	}
	if args[0] == "all" {
		if len(args) == 2 {
			return nil, "", errors.New("a name goes with one kind, not all")
		}
		return kinds, "", nil
	}
	kind, ok := kindAliases[strings.ToLower(args[0])]
	if !ok {
		return nil, "", fmt.Errorf("%q is not issuers, clients, policies or all", args[0])
	}
	k, _ := kindNamed(kind)
	if len(args) == 2 {
		return []kindInfo{k}, args[1], nil
	}
	return []kindInfo{k}, "", nil
}

// fetch reads the selected resources: every one of each kind, or the one
// called name.
func fetch(ctx context.Context, client *adminClient, selected []kindInfo, name string) ([]document, error) {
	if name != "" {
		d, found, err := client.current(ctx, selected[0], name)
		if err == nil && !found {
			err = fmt.Errorf("%s/%s: not found", strings.ToLower(selected[0].kind), name)
		}
		return []document{d}, err
	}
	var docs []document
	for _, k := range selected {
		list, err := client.list(ctx, k)
		if err != nil {
			return nil, err
		}
		docs = append(docs, list...)
	}
	return docs, nil
}

// writeDocuments prints docs as a YAML stream or one JSON List.
func writeDocuments(out io.Writer, docs []document, format string) error {
	if format == "json" {
		items := make([]any, len(docs))
		for i, d := range docs {
			items[i] = map[string]any{"apiVersion": apiVersion, "kind": d.kind.kind, "metadata": map[string]any{"name": d.name}, "spec": d.spec}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"apiVersion": apiVersion, "kind": "List", "items": items})
	}
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(documentYAML(d)); err != nil {
			return err
		}
	}
	return enc.Close()
}
