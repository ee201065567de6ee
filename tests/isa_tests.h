/* tests/isa_tests.h: one check run three times, at the CPU's best kernel set, with LPQ_ISA=avx2
** and with LPQ_ISA=generic. Criterion runs each test in its own process and the engine reads
** LPQ_ISA once per process, so each setting is its own test. Include after criterion.h. */
#ifndef LPQ_TESTS_ISA_TESTS_H
#define LPQ_TESTS_ISA_TESTS_H

#include <stdlib.h>

#define ISA_TESTS(suite, best, avx2, generic, fn)                                              \
  Test(suite, best) { fn(); }                                                                  \
  Test(suite, avx2) {                                                                          \
    cr_assert_eq(setenv("LPQ_ISA", "avx2", 1), 0);                                             \
    fn();                                                                                      \
  }                                                                                            \
  Test(suite, generic) {                                                                       \
    cr_assert_eq(setenv("LPQ_ISA", "generic", 1), 0);                                          \
    fn();                                                                                      \
  }

#endif
