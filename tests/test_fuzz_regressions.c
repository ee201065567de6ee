/*
** tests/test_fuzz_regressions.c: replays, under the normal build (and `make check-asan`), every
** committed input of the fuzz targets through the same entry points the fuzzers call: the seed
** corpora (tests/fuzz/corpus/NAME) and each input that once crashed, hung or leaked
** (tests/fuzz/regressions/NAME). A target aborts when a property it checks fails; the handler
** below names the input first.
*/
#define _GNU_SOURCE
#define LPQ_FUZZ_NO_MAIN
#include "tests/fuzz/fuzz_api.c"
#include "tests/fuzz/fuzz_array.c"
#include "tests/fuzz/fuzz_config.c"
#include "tests/fuzz/fuzz_formats.c"
#include "tests/fuzz/fuzz_onnx.c"
#include "tests/fuzz/fuzz_settings.c"
#include "tests/fuzz/fuzz_wire.c"

#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

typedef void (*fuzz_fn)(const uint8_t *data, size_t size);

static char current[1024]; /* the input being replayed, for the crash handler */

static void on_crash(int sig) {
  static const char head[] = "fuzz regression: crashed on input ";
  if (write(2, head, sizeof head - 1) < 0 || write(2, current, strlen(current)) < 0 ||
      write(2, "\n", 1) < 0) {
    /* nothing more to do on the way down */
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static void catch_crashes(void) {
  signal(SIGABRT, on_crash);
  signal(SIGSEGV, on_crash);
  signal(SIGBUS, on_crash);
  signal(SIGFPE, on_crash);
}

static uint8_t *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s: cannot open", path);
  uint8_t *data = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 65536) {
      cap = cap ? 2 * cap : 65536;
      data = realloc(data, cap);
      cr_assert_not_null(data);
    }
    size_t n = fread(data + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  fclose(f);
  *size = len;
  return data;
}

/* Replays every regular file of dir (sorted: the order of a run is reproducible); returns
** how many. A missing folder counts 0. */
static size_t replay_dir(const char *dir, const char *suffix, fuzz_fn fn) {
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  if (n < 0)
    return 0;
  size_t count = 0;
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    size_t nl = strlen(name), sl = suffix ? strlen(suffix) : 0;
    snprintf(current, sizeof current, "%s/%s", dir, name);
    struct stat st;
    if (name[0] != '.' && (!suffix || (nl >= sl && strcmp(name + nl - sl, suffix) == 0)) &&
        stat(current, &st) == 0 && S_ISREG(st.st_mode)) {
      size_t size;
      uint8_t *data = read_all(current, &size);
      fn(data, size);
      free(data);
      count++;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

/* Seeds must be there (a corpus that silently vanished tests nothing); regressions may not. */
static void replay(const char *target, fuzz_fn fn, int seeds_required) {
  catch_crashes();
  char dir[256];
  snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
  size_t seeds = replay_dir(dir, NULL, fn);
  snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
  size_t regressions = replay_dir(dir, NULL, fn);
  if (seeds_required)
    cr_assert_gt(seeds, 0, "%s: no seed inputs in tests/fuzz/corpus/%s", target, target);
  cr_log_info("%s: %zu seeds, %zu regression inputs replayed", target, seeds, regressions);
}

Test(fuzz_regressions, formats) {
  replay("formats", fuzz_formats, 1);
}

Test(fuzz_regressions, array) {
  replay("array", fuzz_array, 1);
}

Test(fuzz_regressions, config) {
  replay("config", fuzz_config, 1);
}

Test(fuzz_regressions, settings) {
  replay("settings", fuzz_settings, 1);
}

Test(fuzz_regressions, wire) {
  replay("wire", fuzz_wire, 1);
}

Test(fuzz_regressions, api) {
  replay("api", fuzz_api, 1);
}

/* The onnx seeds are the committed fixtures (the fuzzer adds ONNX's node models at run time). */
Test(fuzz_regressions, onnx) {
  catch_crashes();
  size_t fixtures = replay_dir("tests/fixtures", ".onnx", fuzz_onnx);
  cr_assert_gt(fixtures, 0, "no tests/fixtures/*.onnx");
  replay("onnx", fuzz_onnx, 0);
}

/* The checks themselves must be able to fail: a seed that loads, cut short, must not. */
Test(fuzz_regressions, truncated_seeds_fail_cleanly) {
  catch_crashes();
  size_t size;
  uint8_t *data = read_all("tests/fuzz/corpus/array/f32_2x3.npy", &size);
  int fd = memfd_create("lpq-test", MFD_CLOEXEC);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, data, size - 1), (ssize_t)(size - 1));
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lpq_array_t *a = NULL;
  lpq_error_t err;
  cr_assert_lt(lpq_load_array(path, &a, &err), 0);
  cr_assert_null(a);
  cr_assert(strstr(err.msg, "truncated") != NULL, "message: %s", err.msg);
  close(fd);
  free(data);
}
