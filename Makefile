# hil: the two commands of the quick start are `make demo` and `make test`.
# Each installs what it needs on its first run (Debian packages, the armhf
# runtime packages, the ARM kernels) and caches downloads under
# $(HIL_CACHE) so that later runs are offline and fast.

SHELL      := /bin/bash
GO         ?= go
HIL_CACHE  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hil
BUILD      := $(CURDIR)/build
IMAGES     := $(BUILD)/images
HIL        := $(BUILD)/hil
# The commit hil stamps into its version (cmd/hil/version.go's baseVersion
# plus +g<commit>, ".dirty" with uncommitted changes), which reports and
# attestations record.
COMMIT     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo .dirty)
export HIL_CACHE

.PHONY: all deps hil images kernel demo test test-boards vet bench fmt clean

all: hil

deps:
	@scripts/install-deps.sh

hil:
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o $(HIL) ./cmd/hil

# The sample app and its images (good and broken variants), built without
# Docker; a rebuild with nothing changed does nothing.
images: deps
	$(GO) run ./images/build --out $(IMAGES)

# Debian's kernels for the system target, resolved through apt,
# sha256-checked and cached (a later run only re-reads the package lists):
# armmp for qemu-system-arm (virt, pi2) and arm64 for qemu-system-aarch64
# (the 64-bit boards: pi02w, pi3b+, pi4, pi5, and linux/arm64 images).
kernel: deps hil
	$(HIL) kernel fetch --arch armhf
	$(HIL) kernel fetch --arch arm64

demo: deps images kernel hil
	@scripts/demo.sh

# vet also builds where a Go developer works: without cgo (Linux-only and
# cgo-only parts are behind build tags and say so at run time, which the
# WithoutCgo tests check) and on a Mac; and go.mod/go.sum must be tidy.
vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 -run WithoutCgo ./harness/scenario ./harness/record
	GOOS=darwin $(GO) vet ./...
	$(GO) mod tidy -diff
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The fault-injection suite (internal/faultinject) writes its table here:
# go test shows a passing package's output only with -v, so make test
# prints the file after the run (removed first, so a stale table never
# shows, and go test does not reuse a cached result that wrote it).
FAULT_TABLE := $(BUILD)/faultinject-table.txt

# gotestsum runs go test, prints a line per package and the output of
# every failed test, keeps the events in build/test.json and lists the
# slowest tests after the run, so test time stays in sight (CI: 20 min on
# 2 cores).
GOTESTSUM  := $(GO) run gotest.tools/gotestsum@v1.13.0
TEST_JSON  := $(BUILD)/test.json

test: deps images kernel vet
	@rm -f $(FAULT_TABLE) $(TEST_JSON)
	HIL_IMAGES=$(IMAGES) HIL_FAULT_TABLE=$(FAULT_TABLE) $(GOTESTSUM) --format pkgname-and-test-fails --jsonfile $(TEST_JSON) -- -timeout 30m ./...; rc=$$?; \
	if [ -f $(FAULT_TABLE) ]; then echo; cat $(FAULT_TABLE); fi; \
	if [ -f $(TEST_JSON) ]; then echo; echo "slowest tests (over 20 s):"; $(GOTESTSUM) tool slowest --jsonfile $(TEST_JSON) --threshold 20s | head -30; fi; \
	exit $$rc

# Every bundled scenario on the system target as each board QEMU models,
# through Ginkgo (make test runs the same cases in TestBundledScenarioOnBoards
# and the board matrix cell by cell in TestBoardMatrix).
BOARDS_QEMU := pi2,pi3b+,pi4/32,pi4/64

test-boards: deps images kernel
	HIL_IMAGE=oci:$(IMAGES)/pcapwatch HIL_TARGETS=system HIL_BOARDS=$(BOARDS_QEMU) HIL_REPORT_DIR=$(BUILD)/report-boards \
	  $(GO) test -count=1 -timeout 30m -run TestHIL . -args -ginkgo.label-filter='!broken'

bench: deps images kernel hil
	@for s in scripts/bench/*.sh; do echo "== $$s"; HIL_IMAGES=$(IMAGES) HIL=$(HIL) bash "$$s" || exit 1; done

clean:
	rm -rf $(BUILD)
