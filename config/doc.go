// Package config owns Lamina's configuration file: the YAML schema, strict
// decoding and validation.
//
// A file is decoded into a yaml.Node tree and walked by hand, so that every
// problem is reported as "file:line: field.path: what is wrong": unknown keys,
// values of the wrong type and impossible values (a bad URL scheme, a port out of
// range, a bad CIDR, an unknown strategy, a negative duration, duplicate names, a
// route to an unknown upstream group, a local record that does not parse or lies
// outside its zone). All problems are reported at once, sorted by line.
//
// What it does not do: it builds no servers, resolvers or upstreams and applies
// no defaults that belong to those packages. Every field documents its zero
// value; cmd/lamina maps the validated [Config] onto each package's own Config,
// where zero means "that package's default".
//
// Relative file paths (certificates, keys, PSK files, the state directory) are
// resolved against the directory of the config file.
package config
