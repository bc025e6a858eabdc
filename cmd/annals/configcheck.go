package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

const configUsage = `Usage:
  annals config check [--config FILE] [any annals serve flag]...

Prints the options annals serve would run with, as TOML, each with where
its value came from (flag, env, file or default), then every error with
how to fix it. Exit status 1 when there is an error.
`

func configCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, configUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: config: give a subcommand: check", errUsage)
		}
		return fmt.Errorf("%w: config: unknown subcommand %q", errUsage, args[0])
	}
	var o serveOptions
	fs := newFlagSet("config check", stderr)
	o.flags(fs)
	r, err := parseWithConfig(fs, args[1:])
	if r == nil {
		return err // the command line's, a usage error
	}
	// Then the checks of serve, on what the file made of the options
	// (a file with errors was applied only in part).
	errs := r.errs
	if err := o.resolve(); err != nil {
		errs = append(errs, unjoin(err)...)
	}
	printConfig(stdout, fs, r, &o)
	if len(errs) == 0 {
		fmt.Fprintln(stdout, "# no errors")
		return nil
	}
	fmt.Fprintf(stdout, "\n# %d error(s):\n", len(errs))
	for _, e := range errs {
		msg := strings.TrimPrefix(e.Error(), errUsage.Error()+": ")
		fmt.Fprintf(stdout, "error: %s\n", msg)
	}
	return fmt.Errorf("the configuration has %d error(s)", len(errs))
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// printConfig writes every option as a TOML line, with its source as a
// comment: the output is itself a configuration file.
func printConfig(w io.Writer, fs *flag.FlagSet, r *configReport, o *serveOptions) {
	file := "none"
	if r.path != "" {
		file = r.path
	}
	fmt.Fprintf(w, "# annals serve: the effective configuration (file: %s)\n", file)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		line := f.Name + " = " + configValue(f, o)
		fmt.Fprintf(w, "%-48s # %s\n", line, r.sources[f.Name])
	})
}

// configValue is an option's value in TOML, with secrets hidden and the
// defaults that depend on other options resolved.
func configValue(f *flag.Flag, o *serveOptions) string {
	switch f.Name {
	case "turn-secret":
		if f.Value.String() != "" {
			return `"(hidden)"`
		}
	case "store", "bus":
		return strconv.Quote(redact(f.Value.String()))
	case "domain":
		if len(o.x.domains) > 0 {
			return tomlStrings(o.x.domains)
		}
	case "muc":
		if !strings.Contains(o.x.muc, "<") {
			return strconv.Quote(o.x.muc)
		}
	}
	switch flagKind(f) {
	case "boolean", "integer", "number":
		return f.Value.String()
	case "array":
		v := reflect.ValueOf(f.Value).Elem()
		items := make([]string, v.Len())
		for i := range items {
			items[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return tomlStrings(items)
	}
	return strconv.Quote(f.Value.String())
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
