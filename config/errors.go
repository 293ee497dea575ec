package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a configuration, located by file, line and field.
type Error struct {
	File string // the config file; empty for problems in command-line flags
	Line int    // 1-based; 0 when unknown
	Path string // field path such as "listeners[1].url", or a flag such as "-listen"
	Msg  string
}

// Error formats as "file:line: path: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, sorted by line. It is the
// error type Parse, Load and Validate return.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es *Errors) add(file string, line int, path, msg string) {
	*es = append(*es, &Error{File: file, Line: line, Path: path, Msg: msg})
}

// err returns es sorted as an error, or nil when empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es.Sorted()
}

// Sorted sorts es by file and line and drops exact duplicates (decoding and
// validation may both report one problem).
func (es Errors) Sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}
