package main

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

//go:embed status.html
var statusPage string

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"join":  strings.Join,
	"deref": func(b *bool) bool { return b != nil && *b },
}).Parse(statusPage))

// withLayers adds the layers view to the admin handler:
//
//	GET /layers        JSON: each hop and what protected it (layersView)
//	GET /status.html   the same as a self-contained HTML page
func (a *app) withLayers(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /layers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.layers())
	})
	mux.HandleFunc("GET /status.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		statusTmpl.Execute(w, struct {
			Version string
			V       layersView
		}{versionString(), a.layers()})
	})
	mux.Handle("/", next)
	return mux
}
