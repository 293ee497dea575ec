# Two commands matter (see README): `make run` and `make test`.
GO ?= go
PKGS := $(shell grep -v '^\#' .ci/packages.txt | grep -v '^$$')

.PHONY: run build test deps vet unit bench

run:
	$(GO) run ./cmd/lamina serve

build:
	$(GO) build -o bin/lamina ./cmd/lamina

# deps installs the Debian packages the tests need when any is missing.
deps:
	@missing=""; for p in $(PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

test: deps vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 10m ./resolver/... ./cache/... ./upstream/... ./do53/...

bench:
	./bench/run
