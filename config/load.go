package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: readErr(err)}}
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func readErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes data strictly; name is used in error messages and to resolve
// relative paths. It does not validate values: call Validate after any
// command-line overrides have been applied. When the YAML is well-formed but
// some values could not be decoded, Parse returns the config decoded so far
// together with the errors, so that a caller may validate the rest and report
// every problem at once.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{file: name, lines: map[string]int{}}
	var errs Errors
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // an empty file is an empty config
		}
		line, msg := yamlSyntax(err)
		errs.add(name, line, "", msg)
		return nil, errs.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.add(name, extra.Line, "", "more than one YAML document")
	}
	d := decoder{errs: &errs, file: name, lines: c.lines}
	d.decode(&root, "", reflect.ValueOf(c).Elem())
	return c, errs.err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlSyntax splits "yaml: line 3: could not find expected ':'" into 3 and the
// message, so that it reads as file:line: msg.
func yamlSyntax(err error) (int, string) {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	return line, m[2]
}

// File is the path the config was read from ("" for flags only).
func (c *Config) File() string { return c.file }

// Path resolves p against the config file's directory; "" stays "".
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.file == "" || strings.HasPrefix(c.file, "<") {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}

// Line returns the line a field path was read from, or 0.
func (c *Config) Line(path string) int { return c.lines[path] }
