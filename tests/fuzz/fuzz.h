/*
** tests/fuzz/fuzz.h: what the libFuzzer targets share. Each tests/fuzz/fuzz_NAME.c defines
** `int fuzz_NAME(const uint8_t *data, size_t size)` and ends with LPQ_FUZZ_MAIN(fuzz_NAME).
** `make fuzz` builds each file alone with clang -fsanitize=fuzzer (the macro then defines
** LLVMFuzzerTestOneInput); tests/test_fuzz_regressions.c includes every file with
** LPQ_FUZZ_NO_MAIN defined and replays the committed inputs through the very same functions
** under the normal build. A target aborts (never returns an error) when a property it checks
** fails, so the fuzzer and the regression suite both see it.
*/
#ifndef LPQ_FUZZ_H
#define LPQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LPQ_FUZZ_NO_MAIN
#define LPQ_FUZZ_MAIN(fn)
#else
#define LPQ_FUZZ_MAIN(fn)                                                                    \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                             \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                            \
    fn(data, size);                                                                          \
    return 0;                                                                                \
  }
#endif

/* A property the code promises failed: say which, then abort (a crash for libFuzzer). */
#define FUZZ_CHECK(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "fuzz: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                                          \
      fputc('\n', stderr);                                                                   \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

/* The input as a NUL-terminated string (it stops at the first NUL byte, as C text does). */
static inline char *fuzz_text(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL)
    abort();
  if (size)
    memcpy(text, data, size);
  text[size] = '\0';
  return text;
}

#endif
