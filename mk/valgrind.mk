# valgrind: `make check-valgrind` runs the Criterion suites of build/ under memcheck
# (scripts/run_valgrind.sh: every test process checked, the daemons the tests start are not).
# VALGRIND_SUITES=name runs one suite, like TEST_FILTER for make test.
.PHONY: check-valgrind
check-valgrind: deps
	@$(MAKE) --no-print-directory all
	@LPQ_ASAN=1 LPQ_VALGRIND=1 scripts/run_valgrind.sh $(BUILD) \
	    $(filter %$(VALGRIND_SUITES),$(TESTS))
