/* tests/loader_files.c: helpers for the loader suites: a temp dir per test, writing and
** reading files, and checking that a load fails with a message that names the file. */
#include "tests/loader_files.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

char loader_tmpdir[64];

void loader_make_tmpdir(void) {
  snprintf(loader_tmpdir, sizeof loader_tmpdir, "/tmp/lpq_loaders_XXXXXX");
  cr_assert_not_null(mkdtemp(loader_tmpdir));
}

void loader_remove_tmpdir(void) {
  DIR *d = opendir(loader_tmpdir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      snprintf(path, sizeof path, "%s/%s", loader_tmpdir, e->d_name);
      unlink(path);
    }
  closedir(d);
  rmdir(loader_tmpdir);
}

/* A path in the temp dir; each call returns a new buffer slot (a few in flight at a time). */
const char *loader_tmp(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", loader_tmpdir, name);
  return b;
}

void loader_write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot create %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

void loader_write_gzip(const char *path, const void *data, size_t len) {
  gzFile gz = gzopen(path, "wb");
  cr_assert_not_null(gz);
  cr_assert_eq(gzwrite(gz, data, (unsigned)len), (int)len);
  cr_assert_eq(gzclose(gz), Z_OK);
}

/* Reads a whole file into a malloc'd buffer. */
unsigned char *loader_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot read %s", path);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc(*len ? *len : 1);
  cr_assert_not_null(buf);
  cr_assert_eq(fread(buf, 1, *len, f), *len);
  fclose(f);
  return buf;
}

/* The load must fail with a message that names the file and contains `what`. */
void loader_expect_error(int (*load)(const char *, lpq_array_t **, lpq_error_t *),
                         const char *path, const char *what) {
  lpq_array_t *a = (lpq_array_t *)1;
  lpq_error_t err = {0};
  int rc = load(path, &a, &err);
  cr_assert(rc < 0, "%s: loaded, expected an error about '%s'", path, what);
  cr_assert_eq(err.code, rc);
  cr_assert_null(a, "%s: *out must be NULL on failure", path);
  cr_assert(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
  cr_assert(strstr(err.msg, what) != NULL, "message '%s' does not say '%s'", err.msg, what);
}

void loader_fill_pattern(lpq_array_t *a) {
  unsigned char *p = a->data;
  size_t bytes = a->count * lpq_dtype_size(a->dtype);
  for (size_t i = 0; i < bytes; i++)
    p[i] = (unsigned char)(i * 37 + 11);
  if (a->dtype == LPQ_DT_BOOL)
    for (size_t i = 0; i < bytes; i++)
      p[i] &= 1;
  if (a->dtype == LPQ_DT_F32)
    for (size_t i = 0; i < a->count; i++)
      ((float *)a->data)[i] = (float)i * -0.75f + 1e-3f;
  if (a->dtype == LPQ_DT_F64)
    for (size_t i = 0; i < a->count; i++)
      ((double *)a->data)[i] = (double)i * 1.0e10 - 3.25;
}

void loader_assert_same(const lpq_array_t *a, const lpq_array_t *b) {
  cr_assert_eq(a->dtype, b->dtype);
  cr_assert_eq(a->ndim, b->ndim);
  for (int i = 0; i < a->ndim; i++)
    cr_assert_eq(a->shape[i], b->shape[i]);
  cr_assert_eq(a->count, b->count);
  cr_assert_eq(memcmp(a->data, b->data, a->count * lpq_dtype_size(a->dtype)), 0);
}

lpq_array_t *loader_load_or_fail(const char *path) {
  lpq_array_t *a = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_load_array(path, &a, &err), 0, "%s", err.msg);
  return a;
}
