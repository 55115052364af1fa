# The two commands of README: `make run` and `make test`.
# Everything else is CMake in build/ (or build-asan/ for the sanitizer build).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps deps-test build run test test-asan test-tsan unit bench bench-cluster soak persist fuzz format format-check check-layers docs clean install

all: build

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

# Starts the server on port 8080 (PORT=9000 make run, or make run
# PORT=9000) with its database at ./data/livecount.db.
PORT ?=
run: build
	mkdir -p data
	exec $(BUILD)/livecount --config conf/livecount.conf $(if $(PORT),--port $(PORT))

# Every test: unit, integration and web through ctest, then each fuzz
# target for a few seconds (a smoke run; `make fuzz` runs them longer).
# Configures again: a build dir made by `make run` may predate the test
# packages.
test: deps-test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j2
	tests/fuzz/run.sh 3

# Each libFuzzer target for FUZZ_SECONDS (default 60), in build-fuzz/.
FUZZ_SECONDS ?= 60
fuzz: deps-test
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# The unit and integration suites again under ASan + UBSan.
test-asan: deps-test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLC_SANITIZE=ON
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L 'unit|integration'

# The unit and integration suites under ThreadSanitizer, in build-tsan/. Reports in
# libwebsockets/libuv internals are suppressed in tests/tsan.supp (each
# entry says why); a report in our code fails the run.
test-tsan: deps-test
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLC_TSAN=ON
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		ctest --output-on-failure -L 'unit|integration'

# Rewrites the generated parts of README.md and docs/livecount.8 (the layer
# table from src/layers.txt, every config key from the table in config.c);
# ctest's docs_* tests fail while they are not current.
docs: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS) --target livecount
	scripts/check-docs.py --fix layers
	scripts/check-docs.py --fix config $(BUILD)/livecount

# No object of the server calls one above it, and none in a circle.
check-layers: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)
	scripts/check-layers.sh $(BUILD)

unit: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -L unit

# Benchmarks (not part of make test): S1-S6 into loadtest/RESULTS.md.
bench: build
	loadtest/bench.sh

# Cluster-mode benchmarks (issue 11): raw outputs and a report.md in a temp dir.
bench-cluster: build
	loadtest/cluster_bench.sh all

# 10 minutes of mixed load, RSS and fds sampled into loadtest/RESULTS.md.
soak: build
	loadtest/soak.sh $(BUILD)

# Flush and reload 1M URLs through the real binary, into loadtest/RESULTS.md.
persist: build
	loadtest/persist.sh $(BUILD)

# Installs into PREFIX (default /usr/local; DESTDIR honoured): bin/livecount,
# share/livecount/web, share/man/man8/livecount.8, etc/livecount/livecount.conf
# (paths set for this prefix; an existing one is kept), lib/systemd/system/
# livecount.service and the data directory var/lib/livecount. PREFIX=/usr
# uses /etc and /var/lib instead. The unit keeps its database in its own
# StateDirectory, /var/lib/livecount, whatever the prefix.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# Every C (and C++) source and header of the repository (src, include,
# tests/unit, tests/fuzz, the test shim, loadtest), tracked or new, never
# build output.
C_FILES = $(shell git ls-files --cached --others --exclude-standard \
		'*.c' '*.cc' '*.h' 2>/dev/null || \
		find src include tests loadtest -name '*.[ch]' -o -name '*.cc')

format:
	clang-format -i $(C_FILES)

format-check:
	clang-format --dry-run --Werror $(C_FILES)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
