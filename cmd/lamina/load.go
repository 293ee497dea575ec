package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/configs"
)

// defaultName is how the embedded default config is named in messages.
const defaultName = "<built-in configs/default.yaml>"

// source says where serve's configuration comes from, so that SIGHUP can read
// it again the same way.
type source struct {
	file      string           // "" = the embedded default, or none when flags suffice
	overrides config.Overrides // flags, applied on top of the file
}

// load reads and validates the configuration: the file, or the embedded
// default when there is none, with the flags applied on top.
func (s source) load() (*config.Config, error) {
	name, data := defaultName, configs.Default
	if s.file != "" {
		var err error
		if data, err = os.ReadFile(s.file); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, config.Errors{{File: s.file, Msg: err.Error()}}
		}
		name = s.file
	}
	c, err := config.Parse(name, data)
	if c == nil {
		return nil, err
	}
	c.Apply(s.overrides)
	var errs config.Errors
	for _, e := range []error{err, c.Validate()} {
		if es, ok := e.(config.Errors); ok {
			errs = append(errs, es...)
		}
	}
	if len(errs) > 0 {
		return nil, errs.Sorted()
	}
	return c, nil
}

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "check -config FILE", stderr)
	file := fs.String("config", "", "the configuration `file` to validate (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "lamina check: -config FILE is required")
		fs.Usage()
		return exitConfig
	}
	if _, err := (source{file: *file}).load(); err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "%s: ok\n", *file)
	return exitOK
}
