// Package configs holds Lamina's example configurations. Only the default one
// is compiled in: `lamina serve` runs it when given no -config and no flags.
// Every file here is loaded by a test in cmd/lamina.
package configs
