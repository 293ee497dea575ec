package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/laminadns/lamina/config"
)

// newLogger builds the process logger on w. Its level lives in lv so that a
// reload can change it; the format is fixed for the life of the process.
func newLogger(c config.Logging, w io.Writer, lv *slog.LevelVar) *slog.Logger {
	lv.Set(level(c.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func level(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
