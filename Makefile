# lpq build. `make` builds everything into build/; `make test` runs every suite;
# `make check-asan` runs them under ASan+UBSan in build-asan/; `make demo` runs the demo.
# Every component folder (lp, common, engine, accel_sim, worker, and the coordinator's search,
# store, api and dispatch) becomes one static archive from its *.c files (coordinator/search
# -> libcoordinator_search.a); programs live in their own folders (see PROGRAMS below).

.DEFAULT_GOAL := all
BUILD    ?= build
CC       ?= cc
# libcrypto: the blob hashes (common/hash.c, SHA-256), from libssl-dev.
# libh2o: the dashboard's HTTP/1.1 (coordinator/http/, lpq-coordinator --http), the libuv build.
PKGS      = libzmq libuv jansson libprotobuf-c openblas zlib sqlite3 libcrypto libh2o
SAN_FLAGS ?=
CFLAGS   ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP -I. -I$(BUILD)/gen $(SAN_FLAGS) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override LDFLAGS += -pthread $(SAN_FLAGS)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmvec -lm
TEST_LDLIBS = $(shell pkg-config --libs criterion 2>/dev/null)

# Component folders, bottom first (DESIGN section 4; docs/ARCHITECTURE.md).
LIBDIRS  := lp common engine accel_sim worker coordinator/search coordinator/store \
            coordinator/api coordinator/dispatch coordinator/http
# Link order: top first, so each archive finds what it needs in the ones after it.
LINKORDER := coordinator/http coordinator/dispatch coordinator/api coordinator/store coordinator/search worker \
             accel_sim engine common lp
libname   = $(subst /,_,$(1))
LIBS     := $(foreach d,$(LINKORDER),$(BUILD)/lib/lib$(call libname,$(d)).a)

# Generated sources per component (NAME_GEN_SRC, NAME as libname: e.g. engine gets the
# protobuf-c ONNX code, coordinator_store its schema migrations).
-include mk/*.mk

define lib_rules
$(2)_SRC := $$(wildcard $(1)/*.c) $$($(2)_GEN_SRC)
$(2)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(2)_SRC))
$(BUILD)/lib/lib$(2).a: $$($(2)_OBJ)
	@mkdir -p $$(@D)
	$$(AR) rcs $$@ $$^
endef
$(foreach d,$(LIBDIRS),$(eval $(call lib_rules,$(d),$(call libname,$(d)))))

# Programs: name:folder. Each folder's *.c files make one executable.
PROGRAMS := lpq:tools/lpq lpqctl:tools/lpqctl lpq-coordinator:coordinator/daemon lpq-worker:worker/daemon
define prog_rules
$(1)_SRC := $$(wildcard $(2)/*.c)
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$($(1)_SRC))
$(BUILD)/bin/$(1): $$($(1)_OBJ) $$(LIBS)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_OBJ) $$(LIBS) $$(LDLIBS)
BINS += $$(if $$($(1)_SRC),$(BUILD)/bin/$(1))
endef
$(foreach p,$(PROGRAMS),$(eval $(call prog_rules,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))))))

# Tests: tests/test_*.c are Criterion suites; other tests/*.c are helpers linked into each.
TEST_SRC    := $(wildcard tests/test_*.c)
TEST_HELPER := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(TEST_SRC),$(wildcard tests/*.c)))
TESTS       := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_HELPER) $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELPER) $(LIBS) $(TEST_LDLIBS) $(LDLIBS)

# Benchmarks: bench/*.c, one executable each.
BENCH_SRC := $(wildcard bench/*.c)
BENCHES   := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# bench/engine/cpuid_avx2.c: an LD_PRELOAD shim that hides AVX-512 from a process (CPUID
# faulting), for bench/engine/run.sh's AVX2 row; a bench tool, never linked into lpq. Built
# without the sanitizers: it is preloaded into programs that are not.
BENCH_TOOLS := $(BUILD)/bench/cpuid_avx2.so
$(BUILD)/bench/cpuid_avx2.so: bench/engine/cpuid_avx2.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

.PHONY: all deps test check check-asan demo bench clean
all: $(LIBS) $(BINS) $(TESTS) $(BENCHES) $(BENCH_TOOLS) $(MAN_PAGES)
# The four programs alone (make install, the Debian package): mk/install.mk.
programs: $(BINS)

deps:
	@scripts/deps.sh

# Tests run in order; a failing suite fails `make test`. TEST_FILTER=name runs one suite.
test: deps
	@$(MAKE) --no-print-directory all
	@scripts/run_tests.sh $(BUILD) $(filter %$(TEST_FILTER),$(TESTS))

check: test

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan \
	    SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    CFLAGS="-O1 -g" LPQ_ASAN=1 all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 LPQ_ASAN=1 \
	    scripts/run_tests.sh build-asan $(patsubst $(BUILD)/%,build-asan/%,$(filter %$(TEST_FILTER),$(TESTS)))

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

# Every benchmark, then the table of their verdicts (MET/MISSED per target).
bench: all
	@scripts/bench_all.sh $(BENCHES)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
