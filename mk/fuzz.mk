# mk/fuzz.mk: `make fuzz` builds every libFuzzer target tests/fuzz/fuzz_NAME.c with clang
# (-fsanitize=fuzzer,address,undefined, the project's libraries rebuilt with the same
# sanitizers into $(FUZZ_BUILD)/) and runs each for FUZZ_SECONDS seconds, one after another.
#   make fuzz FUZZ_SECONDS=600 FUZZ_TARGETS="onnx api"    longer, some targets only
#   make fuzz-build                                        the binaries only
# New inputs collect in $(FUZZ_BUILD)/corpus/NAME, crashes in $(FUZZ_BUILD)/artifacts/NAME;
# a crash fails the run. tests/test_fuzz_regressions.c replays the committed inputs in `make
# test` (see tests/fuzz/README.md).
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIBS     = $(foreach d,$(LINKORDER),$(FUZZ_BUILD)/lib/lib$(call libname,$(d)).a)
FUZZ_BINS     = $(patsubst %,$(FUZZ_BUILD)/fuzz/fuzz_%,$(FUZZ_ALL))

.PHONY: fuzz fuzz-build fuzz-bins
fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The libraries first (the sub-make reuses the Makefile's rules with clang and the
# sanitizers, coverage instrumentation included), then the targets against them.
fuzz-build: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CFLAGS="-O1 -g" \
	    SAN_FLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FUZZ_LIBS)
	@$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BINS)

$(FUZZ_BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIBS)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -pthread -I. -I$(FUZZ_BUILD)/gen \
	    -fsanitize=fuzzer $(FUZZ_SAN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
	    -o $@ $< $(FUZZ_LIBS) $(LDLIBS)
