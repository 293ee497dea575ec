package configs

import _ "embed"

// Default is default.yaml, Lamina's built-in configuration.
//
//go:embed default.yaml
var Default []byte
