/* tests/loader_files.h: helpers shared by tests/test_loaders*.c (see loader_files.c). */
#ifndef LPQ_TESTS_LOADER_FILES_H
#define LPQ_TESTS_LOADER_FILES_H

#include "common/common.h"

#include <stddef.h>

#define FASHION "/usr/share/datasets/fashion-mnist/"

/* The current test's temp dir: make it in a suite's .init, remove it (and its files) in .fini. */
extern char loader_tmpdir[64];
void loader_make_tmpdir(void);
void loader_remove_tmpdir(void);
/* A path in the temp dir; the result stays valid for the next three calls. */
const char *loader_tmp(const char *name);

void loader_write_file(const char *path, const void *data, size_t len);
void loader_write_gzip(const char *path, const void *data, size_t len);
/* The whole file in a malloc'd buffer the caller frees. */
unsigned char *loader_read_file(const char *path, size_t *len);
/* Asserts that load(path) fails, leaves NULL, and says `what` in a message naming the file. */
void loader_expect_error(int (*load)(const char *, lpq_array_t **, lpq_error_t *),
                         const char *path, const char *what);
/* Fills a with a type-appropriate pattern (bool 0/1, distinct floats). */
void loader_fill_pattern(lpq_array_t *a);
/* Asserts equal type, shape and bytes. */
void loader_assert_same(const lpq_array_t *a, const lpq_array_t *b);
/* lpq_load_array or a failed assertion with the loader's message. */
lpq_array_t *loader_load_or_fail(const char *path);

#endif
