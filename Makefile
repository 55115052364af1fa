# The two commands of README: `make run` and `make test`.
# Everything else is CMake in build/ (or build-asan/ for the sanitizer build).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps deps-test build run test test-asan unit bench bench-cluster soak persist fuzz format clean

all: build

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

# Starts the server on port 8080 with its database at ./data/livecount.db.
run: build
	mkdir -p data
	exec $(BUILD)/livecount --config conf/livecount.conf

# Every test: unit, integration and web through ctest, then each fuzz
# target for a few seconds (a smoke run; `make fuzz` runs them longer).
test: deps-test $(BUILD)/Makefile
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

format:
	clang-format -i src/*.c include/lc/*.h tests/unit/*.c

clean:
	rm -rf $(BUILD) build-asan build-fuzz
