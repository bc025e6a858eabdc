package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// The configuration file of annals serve (annals.toml) names each option
// as its flag: `max-stanza = 262144` is --max-stanza 262144. Options may
// sit at the top level or in tables ([federation], [web] …), which only
// group them: a table's name is not part of the key. The file is applied
// to serve's flag.FlagSet, so an option is written once, as a flag, and
// the file, `annals config check` and annals.example.toml's test all read
// the flags.
//
// Precedence: a flag on the command line, then the option's ANNALS_*
// variable (for the options that have one, envBacked), then the file,
// then the flag's default.
//
// There is no implicit file: only --config FILE or $ANNALS_CONFIG name
// one. A service's working directory is whatever its supervisor chose,
// and an ./annals.toml found there silently would change a server
// nobody asked to change; every option's source is then in the command
// line or the environment.

// configEnv names the file when --config does not.
const configEnv = "ANNALS_CONFIG"

// envBacked is every serve option an ANNALS_* variable sets, with its
// variable: the file does not override these when the variable is set
// and not empty (as envOr reads them). TestEnvBacked checks the list
// against the sources.
var envBacked = map[string]string{
	"data":         "ANNALS_DATA",
	"store":        "ANNALS_STORE",
	"bus":          "ANNALS_BUS",
	"durability":   "ANNALS_DURABILITY",
	"log-level":    "ANNALS_LOG_LEVEL",
	"c2s":          "ANNALS_C2S",
	"domain":       "ANNALS_DOMAIN",
	"registration": "ANNALS_REGISTRATION",
	"tls-cert":     "ANNALS_TLS_CERT",
	"tls-key":      "ANNALS_TLS_KEY",
	"muc":          "ANNALS_MUC",
	"s2s":          "ANNALS_S2S",
	"s2s-ca":       "ANNALS_S2S_CA",
	"metrics":      "ANNALS_METRICS",
	"node":         "ANNALS_NODE",
}

// configReport is what the flags, the environment and the file made of
// serve's options.
type configReport struct {
	path    string            // the file, "" when none
	sources map[string]string // flag name: "flag", "env ANNALS_…", "file PATH:LINE" or "default"
	errs    []error           // every error of the file, each naming its line
}

// parseWithConfig parses serve's flags, then applies the configuration
// file to the options neither a flag nor the environment set. Errors of
// the file are usage errors, all of them reported at once.
func parseWithConfig(fs *flag.FlagSet, args []string) (*configReport, error) {
	path := fs.String("config", envOr(configEnv, ""), "a TOML file of these options, each named as its flag (see annals.example.toml); flags and ANNALS_* variables win over it ($"+configEnv+")")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	r := applyConfig(fs, *path)
	if len(r.errs) > 0 {
		return r, fmt.Errorf("%w: %w", errUsage, errors.Join(r.errs...))
	}
	return r, nil
}

// applyConfig applies the file at path ("": none) to the parsed fs.
func applyConfig(fs *flag.FlagSet, path string) *configReport {
	r := &configReport{path: path, sources: map[string]string{}}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		switch env := envBacked[f.Name]; {
		case set[f.Name]:
			r.sources[f.Name] = "flag"
		case env != "" && os.Getenv(env) != "":
			r.sources[f.Name] = "env " + env
		default:
			r.sources[f.Name] = "default"
		}
	})
	if path == "" {
		return r
	}
	settings, err := readConfig(path)
	if err != nil {
		r.errs = append(r.errs, err)
		return r
	}
	for _, s := range settings {
		f := fs.Lookup(s.key)
		if f == nil || s.key == "config" {
			r.errs = append(r.errs, unknownKey(fs, path, s))
			continue
		}
		vals, err := tomlToFlag(f, s.val)
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s:%d: %s: %w", path, s.line, s.key, err))
			continue
		}
		if r.sources[s.key] != "default" {
			continue // a flag or the environment said
		}
		for _, v := range vals {
			if err = fs.Set(s.key, v); err != nil {
				hint := ""
				if k := flagKind(f); k != "string" && k != "array" {
					hint = "; give " + kindExample(f.Name, k)
				}
				r.errs = append(r.errs, fmt.Errorf("%s:%d: %s = %s: %v%s; --%s is %s", path, s.line, s.key, tomlString(s.val), err, hint, s.key, f.Usage))
				break
			}
		}
		if err == nil {
			r.sources[s.key] = fmt.Sprintf("file %s:%d", path, s.line)
		}
	}
	return r
}

// setting is one option of a configuration file.
type setting struct {
	key  string
	line int
	val  any // as go-toml decoded it
}

// readConfig reads the file's options in the order of their lines.
func readConfig(path string) ([]setting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w: give an existing file to --config or $%s, or neither", err, configEnv)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: %v: it is not TOML (https://toml.io)", path, row, col, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	lines := keyLines(data)
	var out []setting
	seen := map[string]int{}
	var errs []error
	add := func(key, where string, v any) {
		line := lines[where]
		if first, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: %s is set twice (also at line %d): keep one", path, line, key, first))
			return
		}
		seen[key] = line
		out = append(out, setting{key: key, line: line, val: v})
	}
	// In the order of the lines, not of the maps: of a key set twice, the
	// later line is the one reported.
	type entry struct {
		key, where string
		val        any
	}
	var entries []entry
	for k, v := range doc {
		table, ok := v.(map[string]any)
		if !ok {
			entries = append(entries, entry{k, k, v})
			continue
		}
		for k2, v2 := range table {
			if _, nested := v2.(map[string]any); nested {
				errs = append(errs, fmt.Errorf("%s:%d: [%s.%s]: tables only group options, one level deep: move its keys up into [%s]", path, lines[k+"."+k2], k, k2, k))
				continue
			}
			entries = append(entries, entry{k2, k + "." + k2, v2})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return lines[entries[i].where] < lines[entries[j].where] })
	for _, e := range entries {
		add(e.key, e.where, e.val)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// keyLines maps each dotted key of a TOML document to its line. go-toml
// decodes into maps without positions; its parser gives them.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		line := 0
		for it := e.Key(); it.Next(); {
			n := it.Node()
			if line == 0 {
				line = p.Shape(n.Raw).Start.Line
			}
			parts = append(parts, string(n.Data))
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = parts
			lines[strings.Join(table, ".")] = line
		case unstable.KeyValue:
			lines[strings.Join(append(append([]string(nil), table...), parts...), ".")] = line
		}
	}
	return lines
}

// tomlToFlag turns a TOML value into the arguments of the flag's Set:
// the TOML type must be the option's (a duration or a size is a string,
// as on the command line; a repeatable option is an array).
func tomlToFlag(f *flag.Flag, v any) ([]string, error) {
	kind := flagKind(f)
	wrong := func() error {
		return fmt.Errorf("wrong type: %s is %s; give %s", tomlString(v), tomlType(v), kindExample(f.Name, kind))
	}
	switch kind {
	case "boolean":
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
	case "integer":
		if n, ok := v.(int64); ok {
			return []string{strconv.FormatInt(n, 10)}, nil
		}
	case "number":
		switch n := v.(type) {
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		case float64:
			return []string{strconv.FormatFloat(n, 'g', -1, 64)}, nil
		}
	case "duration", "string":
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
	case "size":
		switch n := v.(type) {
		case string:
			return []string{n}, nil
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return nil, wrong()
		}
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, wrong()
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, wrong()
}

// flagKind is the TOML type an option takes, from its flag's Value.
func flagKind(f *flag.Flag) string {
	if g, ok := f.Value.(flag.Getter); ok {
		switch g.Get().(type) {
		case bool:
			return "boolean"
		case int, int64, uint, uint64:
			return "integer"
		case float64:
			return "number"
		case time.Duration:
			return "duration"
		case string:
			return "string"
		}
	}
	// A repeatable flag's Value appends to a slice.
	if v := reflect.ValueOf(f.Value); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Slice {
		return "array"
	}
	return "size" // byteSize: bytes, or a string with a suffix
}

func kindExample(name, kind string) string {
	switch kind {
	case "boolean":
		return "true or false, e.g. " + name + " = true"
	case "integer", "number":
		return "a number, e.g. " + name + " = 10"
	case "duration":
		return `a duration as a string, e.g. ` + name + ` = "30s" (units ns, us, ms, s, m, h)`
	case "size":
		return `a size as a string or a number of bytes, e.g. ` + name + ` = "2GiB"`
	case "array":
		return `an array of strings, e.g. ` + name + ` = ["a", "b"]`
	}
	return `a string, e.g. ` + name + ` = "…"`
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v) // dates and times
}

func tomlString(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		items := make([]string, len(v))
		for i, e := range v {
			items[i] = tomlString(e)
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// unknownKey says that the file names no option of serve, and which one
// it likely meant.
func unknownKey(fs *flag.FlagSet, path string, s setting) error {
	if s.key == "config" {
		return fmt.Errorf("%s:%d: unknown key %q: a file cannot name another; give --config on the command line", path, s.line, s.key)
	}
	best, bestD := "", 4
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(s.key, f.Name); d < bestD && f.Name != "config" {
			best, bestD = f.Name, d
		}
	})
	hint := "see annals.example.toml or annals serve -h for the options"
	if best != "" {
		hint = fmt.Sprintf("did you mean %s?", best)
	}
	return fmt.Errorf("%s:%d: unknown key %q: annals serve has no --%s option; %s", path, s.line, s.key, s.key, hint)
}

// editDistance is Levenshtein's, for suggesting an option's name.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
