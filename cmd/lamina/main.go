package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// Exit statuses.
const (
	exitOK      = 0
	exitRuntime = 1
	exitConfig  = 2
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "ech":
		return echCmd(args[1:], stdout, stderr)
	case "query":
		return queryCmd(args[1:], stdout, stderr)
	case "version":
		fs := newFlagSet("version", "version", stdout)
		if code, ok := parseFlags(fs, args[1:]); !ok {
			return code
		}
		fmt.Fprintln(stdout, "lamina", versionString())
		return exitOK
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "lamina: unknown command %q\n", args[0])
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Lamina: an encrypted DNS resolver and forwarder.

Usage:
  lamina serve [-config FILE] [-listen URL]... [-upstream URL]... [-admin ADDR]
  lamina check -config FILE
  lamina ech keygen [-config FILE] [-state-dir DIR] [-public-name NAME]
  lamina query [-server URL] [-type T] [-trace [-admin ADDR]] NAME
  lamina version

Run "lamina COMMAND -h" for a command's flags. With no flags, serve runs the
built-in configuration: Do53 on 127.0.0.1:8053, try
  kdig @127.0.0.1 -p 8053 router.home.arpa
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// newFlagSet returns a flag set that reports errors and -h on w.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: lamina %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns the exit status to use when the command
// should not go on (help asked: 0; bad flags: 2).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitConfig, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "lamina %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitConfig, false
	}
	return 0, true
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
