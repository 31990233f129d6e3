# Thin wrapper around CMake/CTest for the README's Quick start.
#   make run    build, then run `nbio demo`
#   make test   build + CTest, then the whole suite again under ASan+UBSan
#               (clang) together with bounded libFuzzer runs
#               (test-release / test-asan run one half)
#   make bench  build, then run every build/bench/bench_* program
#   make clean  remove the build directories
# Both run and test first make sure the Debian packages are present
# (scripts/install-deps).

BUILD_DIR      ?= build
ASAN_BUILD_DIR ?= build-asan
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE          ?= cmake
CTEST          ?= ctest
BUILD_TYPE     ?= RelWithDebInfo
# Seconds each fuzz target fuzzes (after replaying its corpus) in make test.
FUZZ_SECONDS   ?= 20

ASAN_ENV = ASAN_OPTIONS=detect_leaks=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

MAKEFLAGS += --no-print-directory

.PHONY: all deps build build-asan run test test-release test-asan bench clean

all: build

deps:
	@bash scripts/install-deps

build: deps
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DNBIO_WERROR=ON
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

build-asan: deps
	$(CMAKE) -S . -B $(ASAN_BUILD_DIR) -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DNBIO_WERROR=ON \
	    -DNBIO_SANITIZE=ON -DNBIO_FUZZ=ON -DNBIO_FUZZ_SECONDS=$(FUZZ_SECONDS)
	$(CMAKE) --build $(ASAN_BUILD_DIR) -j$(JOBS)

run: build
	$(BUILD_DIR)/tools/nbio demo

# Both suites always run; make test fails if either had a failure.
test: build build-asan
	@status=0; \
	echo "== CTest in $(BUILD_DIR)"; \
	(cd $(BUILD_DIR) && $(CTEST) --output-on-failure -j$(JOBS)) || status=1; \
	echo "== CTest under ASan+UBSan (with fuzzing) in $(ASAN_BUILD_DIR)"; \
	(cd $(ASAN_BUILD_DIR) && $(ASAN_ENV) $(CTEST) --output-on-failure -j$(JOBS)) || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)"; else echo "make test: all passed"; fi; \
	exit $$status

test-release: build
	cd $(BUILD_DIR) && $(CTEST) --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD_DIR) && $(ASAN_ENV) $(CTEST) --output-on-failure -j$(JOBS)

bench: build
	@set -e; found=0; \
	for b in $(BUILD_DIR)/bench/bench_*; do \
	    if [ -f "$$b" ] && [ -x "$$b" ]; then \
	        found=1; echo "== $$b"; "$$b"; \
	    fi; \
	done; \
	if [ $$found -eq 0 ]; then echo "no bench_* programs in $(BUILD_DIR)/bench"; fi

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
