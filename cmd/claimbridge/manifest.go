package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// apiVersion is the version of the declarative format of `apply` and `get`.
const apiVersion = "claimbridge.dev/v1"

// kindInfo ties a document kind to its admin API collection.
type kindInfo struct {
	kind string // Issuer, Client, Policy
	path string // issuers, clients, policies
	key  string // the field that names a resource: name or id
}

// kinds in the order apply writes them: what a policy names exists first.
var kinds = []kindInfo{
	{kind: "Issuer", path: "issuers", key: "name"},
	{kind: "Client", path: "clients", key: "id"},
	{kind: "Policy", path: "policies", key: "name"},
}

func kindNamed(kind string) (kindInfo, bool) {
	for _, k := range kinds {
		if k.kind == kind {
			return k, true
		}
	}
	return kindInfo{}, false
}

// readOnlyFields are what the API sets; a document's spec leaves them out.
var readOnlyFields = []string{"version", "created_at", "updated_at"}

// document is one resource in the declarative format:
//
//	apiVersion: claimbridge.dev/v1
//	kind: Policy
//	metadata: {name: orders}
//	spec: {...the admin API's JSON body...}
type document struct {
	kind kindInfo
	name string
	spec map[string]any // JSON values: string, json.Number, bool, nil, []any, map[string]any
	from string         // file and document index, for messages
	// version is the stored version of a resource read from the API.
	version int64
}

// etag is the entity tag of the stored version, for If-Match.
func (d document) etag() string { return `"` + strconv.FormatInt(d.version, 10) + `"` }

func (d document) id() string { return strings.ToLower(d.kind.kind) + "/" + d.name }

// readDocuments reads every .yaml, .yml and .json file of each path (a
// file, or a directory read without recursion, in name order).
func readDocuments(paths []string) ([]document, error) {
	var docs []document
	for _, p := range paths {
		files, err := manifestFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			d, err := parseDocuments(b, f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	seen := map[string]string{}
	for _, d := range docs {
		if prev, dup := seen[d.id()]; dup {
			return nil, fmt.Errorf("%s: %s is also defined in %s", d.from, d.id(), prev)
		}
		seen[d.id()] = d.from
	}
	return docs, nil
}

func manifestFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	return files, nil
}

// parseDocuments reads a stream of YAML (or JSON) documents, each a
// resource or a List of resources.
func parseDocuments(b []byte, file string) ([]document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []document
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		v, err := fromYAML(&n)
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", file, i, err)
		}
		if v == nil { // an empty document
			continue
		}
		d, err := toDocuments(v, fmt.Sprintf("%s, document %d", file, i))
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
}

// toDocuments checks one decoded document: a resource, or a List whose
// items are resources.
func toDocuments(v any, from string) ([]document, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: must be a mapping with apiVersion, kind, metadata and spec", from)
	}
	if m["apiVersion"] != apiVersion {
		return nil, fmt.Errorf("%s: apiVersion must be %s", from, apiVersion)
	}
	if m["kind"] == "List" {
		items, ok := m["items"].([]any)
		if !ok {
			return nil, fmt.Errorf("%s: a List needs items", from)
		}
		var docs []document
		for i, it := range items {
			d, err := toDocuments(it, fmt.Sprintf("%s, item %d", from, i+1))
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
		return docs, nil
	}
	kind, _ := m["kind"].(string)
	k, ok := kindNamed(kind)
	if !ok {
		return nil, fmt.Errorf("%s: kind must be Issuer, Client, Policy or List, not %q", from, kind)
	}
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("%s: metadata.name is required", from)
	}
	spec, ok := m["spec"].(map[string]any)
	if m["spec"] != nil && !ok {
		return nil, fmt.Errorf("%s: spec must be a mapping", from)
	}
	if spec == nil {
		spec = map[string]any{}
	}
	return []document{{kind: k, name: name, spec: spec, from: from}}, nil
}

// jsonNumber matches the numbers JSON can carry as written.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// fromYAML turns a YAML node into JSON values, keeping numbers exact
// (json.Number) and timestamps as written (strings).
func fromYAML(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromYAML(n.Content[0])
	case yaml.AliasNode:
		return fromYAML(n.Alias)
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := fromYAML(c)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a string", k.Line)
			}
			val, err := fromYAML(v)
			if err != nil {
				return nil, err
			}
			m[k.Value] = val
		}
		return m, nil
	}
	return scalarFromYAML(n)
}

func scalarFromYAML(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		return b, n.Decode(&b)
	case "!!int", "!!float":
		if jsonNumber.MatchString(n.Value) {
			return json.Number(n.Value), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return json.Number(strconv.FormatInt(int64(f), 10)), nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return n.Value, nil // strings, timestamps and anything else: as written
}

// toYAML turns JSON values into a YAML node with sorted keys; numbers keep
// their JSON text and strings stay strings.
func toYAML(v any) *yaml.Node {
	switch v := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toYAML(v[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, it := range v {
			n.Content = append(n.Content, toYAML(it))
		}
		return n
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(v), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

// documentYAML is d in the declarative format.
func documentYAML(d document) *yaml.Node {
	return toYAML(map[string]any{
		"apiVersion": apiVersion,
		"kind":       d.kind.kind,
		"metadata":   map[string]any{"name": d.name},
		"spec":       d.spec,
	})
}

// specOf turns an admin API resource (JSON) into a document: its name
// goes to metadata, the fields the API sets are dropped.
func specOf(k kindInfo, body []byte) (document, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return document{}, fmt.Errorf("decode %s: %w", k.kind, err)
	}
	name, _ := m[k.key].(string)
	n, _ := m["version"].(json.Number)
	version, _ := n.Int64() // absent in a dry run's answer
	delete(m, k.key)
	for _, f := range readOnlyFields {
		delete(m, f)
	}
	return document{kind: k, name: name, spec: m, version: version}, nil
}

// yamlLines renders v as YAML lines, for diffs.
func yamlLines(v any) []string {
	if v == nil {
		return nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(toYAML(v)); err != nil {
		return []string{fmt.Sprint(v)}
	}
	return strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
}

// diffLines is a line diff of a and b (longest common subsequence): each
// line prefixed "  " (kept), "- " (removed) or "+ " (added).
func diffLines(a, b []string) []string {
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, "  "+a[i])
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, "+ "+b[j])
			j++
		default:
			out = append(out, "- "+a[i])
			i++
		}
	}
	return slices.Clip(out)
}
