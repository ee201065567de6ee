/* tests/test_loaders.c: the .npy loader and writer: round trips of every type, header versions
** and spellings, and many damaged or hostile files that must give clear errors. IDX files, the
** real Fashion-MNIST files and the bundled data are in test_loaders_idx.c. */
#include "common/common.h"
#include "tests/loader_files.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(loaders, .init = loader_make_tmpdir, .fini = loader_remove_tmpdir);

/* A .npy file from parts: version major, the header text (padded here with spaces and '\n'),
** then data bytes. */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data,
                          size_t len) {
  size_t prefix = major == 1 ? 10 : 12, dlen = strlen(dict);
  size_t total = (prefix + dlen + 1 + 63) / 64 * 64, hlen = total - prefix;
  unsigned char *buf = calloc(1, total + len);
  cr_assert_not_null(buf);
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  buf[7] = 0;
  for (size_t i = 0; i < prefix - 8; i++)
    buf[8 + i] = (unsigned char)(hlen >> (8 * i));
  memset(buf + prefix, ' ', hlen);
  memcpy(buf + prefix, dict, dlen);
  buf[total - 1] = '\n';
  if (len)
    memcpy(buf + total, data, len);
  loader_write_file(path, buf, total + len);
  free(buf);
}

/* ---- .npy ---------------------------------------------------------------------------------- */

Test(loaders, npy_round_trip_every_dtype_and_shape) {
  const lpq_dtype_t types[] = {LPQ_DT_F32, LPQ_DT_F64, LPQ_DT_I64, LPQ_DT_I32,
                               LPQ_DT_U8,  LPQ_DT_I8,  LPQ_DT_BOOL};
  const struct {
    int ndim;
    int64_t shape[LPQ_MAX_DIMS];
  } shapes[] = {{0, {0}}, {1, {7}}, {2, {3, 5}}, {4, {2, 1, 3, 4}}, {2, {0, 3}},
                {LPQ_MAX_DIMS, {1, 2, 1, 2, 1, 2, 1, 3}}};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      lpq_error_t err = {0};
      lpq_array_t *a = lpq_array_new(types[t], shapes[s].ndim, shapes[s].shape, &err);
      cr_assert_not_null(a, "%s", err.msg);
      loader_fill_pattern(a);
      const char *path = loader_tmp("round.npy");
      cr_assert_eq(lpq_save_npy(path, a, &err), 0, "%s", err.msg);
      /* numpy's layout: the data starts on a 64-byte boundary, the header ends in '\n' */
      size_t len;
      unsigned char *raw = loader_read_file(path, &len);
      size_t data_off = len - a->count * lpq_dtype_size(a->dtype);
      cr_assert_eq(data_off % 64, 0);
      cr_assert_eq(raw[data_off - 1], '\n');
      free(raw);
      lpq_array_t *b = NULL;
      cr_assert_eq(lpq_load_npy(path, &b, &err), 0, "%s %s: %s", lpq_dtype_name(types[t]),
                   "load", err.msg);
      loader_assert_same(a, b);
      lpq_array_t *c = NULL;
      cr_assert_eq(lpq_load_array(path, &c, &err), 0, "%s", err.msg);
      loader_assert_same(a, c);
      lpq_array_free(&a);
      lpq_array_free(&b);
      lpq_array_free(&c);
      cr_assert_null(b);
    }
}

Test(loaders, npy_header_versions_and_spellings) {
  const float data[6] = {1.5f, -2, 3, 4, 5, 6.25f};
  const char *dicts[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
      "{\"shape\": (2, 3), \"descr\": \"<f4\", \"fortran_order\": False}",
      "{ 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , 'descr' : '<f4' , }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
  };
  for (int major = 1; major <= 3; major++)
    for (size_t d = 0; d < sizeof dicts / sizeof dicts[0]; d++) {
      const char *path = loader_tmp("v.npy");
      write_npy_raw(path, major, dicts[d], data, sizeof data);
      lpq_array_t *a = NULL;
      lpq_error_t err = {0};
      cr_assert_eq(lpq_load_npy(path, &a, &err), 0, "v%d %s: %s", major, dicts[d], err.msg);
      cr_assert_eq(a->dtype, LPQ_DT_F32);
      cr_assert_eq(a->ndim, 2);
      cr_assert_eq(a->shape[0], 2);
      cr_assert_eq(a->shape[1], 3);
      cr_assert_eq(memcmp(a->data, data, sizeof data), 0);
      lpq_array_free(&a);
    }
}

Test(loaders, npy_single_byte_types_any_order_mark) {
  const unsigned char data[3] = {0, 1, 255};
  const char *descr[] = {"|u1", "<u1", "|i1", "|b1"};
  const lpq_dtype_t want[] = {LPQ_DT_U8, LPQ_DT_U8, LPQ_DT_I8, LPQ_DT_BOOL};
  for (int i = 0; i < 4; i++) {
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
             descr[i]);
    write_npy_raw(loader_tmp("b.npy"), 1, dict, data, 3);
    lpq_array_t *a = NULL;
    lpq_error_t err = {0};
    cr_assert_eq(lpq_load_npy(loader_tmp("b.npy"), &a, &err), 0, "%s: %s", descr[i], err.msg);
    cr_assert_eq(a->dtype, want[i]);
    cr_assert_eq(((unsigned char *)a->data)[2], 255);
    lpq_array_free(&a);
  }
}

Test(loaders, npy_bad_headers) {
  const float data[4] = {0};
  const struct {
    const char *dict, *what;
  } cases[] = {
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", "fortran_order is True"},
      {"{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", "big-endian"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (8,), }", "not supported"},
      {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", "not supported"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", "structured"},
      {"{'descr': '<f4', 'shape': (4,), }", "missing key 'fortran_order'"},
      {"{'fortran_order': False, 'shape': (4,), }", "missing key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", "twice"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", "unknown key 'x'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", "non-negative"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4.0,), }", "bad syntax"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [4], }", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,), }", "not True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk", "after the closing"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (4,), }", "expected ','"},
      {"('descr', '<f4')", "not a dictionary"},
      {"{descr: '<f4', 'fortran_order': False, 'shape': (4,), }", "quoted key"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, ", "'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,4), }",
       "more than 8 dimensions"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
       "absurdly large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }",
       "overflows"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
       "truncated: shape [1000000000000]"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", "file ends at byte"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", "4 bytes after the data"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", "file ends at byte"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_npy_raw(loader_tmp("bad.npy"), 1 + (int)(i % 2), cases[i].dict, data, sizeof data);
    loader_expect_error(lpq_load_npy, loader_tmp("bad.npy"), cases[i].what);
  }
}

Test(loaders, npy_bad_preamble) {
  unsigned char buf[128];
  memset(buf, ' ', sizeof buf);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);

  loader_write_file(loader_tmp("empty.npy"), buf, 0);
  loader_expect_error(lpq_load_npy, loader_tmp("empty.npy"), "bad magic");
  loader_write_file(loader_tmp("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00", 10);
  loader_expect_error(lpq_load_npy, loader_tmp("magic.npy"), "bad magic");
  buf[6] = 4;
  loader_write_file(loader_tmp("v4.npy"), buf, sizeof buf);
  loader_expect_error(lpq_load_npy, loader_tmp("v4.npy"), "version 4.0");
  buf[6] = 1;
  buf[8] = 0;
  buf[9] = 0;
  loader_write_file(loader_tmp("hlen0.npy"), buf, sizeof buf);
  loader_expect_error(lpq_load_npy, loader_tmp("hlen0.npy"), "header length 0");
  buf[6] = 2; /* a 4-byte header length of 0x7f000000: hostile */
  buf[8] = 0, buf[9] = 0, buf[10] = 0, buf[11] = 0x7f;
  loader_write_file(loader_tmp("hlen_big.npy"), buf, sizeof buf);
  loader_expect_error(lpq_load_npy, loader_tmp("hlen_big.npy"), "out of range");
  buf[6] = 1; /* header length 1000 in a 128-byte file */
  buf[8] = 1000 & 0xff, buf[9] = 1000 >> 8;
  loader_write_file(loader_tmp("hlen_lie.npy"), buf, sizeof buf);
  loader_expect_error(lpq_load_npy, loader_tmp("hlen_lie.npy"), "truncated in the header at byte 128 of 1010");
  buf[8] = 118, buf[9] = 0;
  memcpy(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 57);
  buf[20] = '\0';
  loader_write_file(loader_tmp("nul.npy"), buf, sizeof buf);
  loader_expect_error(lpq_load_npy, loader_tmp("nul.npy"), "NUL");
  loader_expect_error(lpq_load_npy, loader_tmp("does_not_exist.npy"), "No such file");
  loader_expect_error(lpq_load_npy, loader_tmpdir, "not a regular file");
}

/* Every prefix of a valid file is an error, never a crash. */
Test(loaders, npy_every_truncation) {
  int64_t shape[2] = {3, 4};
  lpq_error_t err = {0};
  lpq_array_t *a = lpq_array_new(LPQ_DT_I32, 2, shape, &err);
  loader_fill_pattern(a);
  cr_assert_eq(lpq_save_npy(loader_tmp("full.npy"), a, &err), 0, "%s", err.msg);
  size_t len;
  unsigned char *raw = loader_read_file(loader_tmp("full.npy"), &len);
  for (size_t cut = 0; cut < len; cut++) {
    loader_write_file(loader_tmp("cut.npy"), raw, cut);
    lpq_array_t *b = NULL;
    int rc = lpq_load_npy(loader_tmp("cut.npy"), &b, &err);
    cr_assert(rc < 0 && b == NULL, "a file cut at %zu of %zu bytes loaded", cut, len);
    cr_assert(strstr(err.msg, "cut.npy") != NULL, "%s", err.msg);
    if (cut >= 64) /* past the header: the message says where the data ends */
      cr_assert(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
  }
  free(raw);
  lpq_array_free(&a);
}

/* Random damage to the preamble and header (a fixed-seed generator): each file loads with a
** size that fits the file, or fails with a message naming it; never a crash or a wild read. */
Test(loaders, npy_random_header_damage) {
  int64_t shape[3] = {2, 3, 4};
  lpq_error_t err = {0};
  lpq_array_t *a = lpq_array_new(LPQ_DT_F64, 3, shape, &err);
  loader_fill_pattern(a);
  cr_assert_eq(lpq_save_npy(loader_tmp("good.npy"), a, &err), 0, "%s", err.msg);
  size_t len;
  unsigned char *raw = loader_read_file(loader_tmp("good.npy"), &len);
  uint64_t state = 88172645463325252ull;
  const int rounds = getenv("LPQ_ASAN") ? 300 : 2000;
  for (int r = 0; r < rounds; r++) {
    unsigned char *bad = malloc(len);
    cr_assert_not_null(bad);
    memcpy(bad, raw, len);
    for (int k = 0; k < 1 + r % 3; k++) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      bad[state % 64] = (unsigned char)(state >> 32);
    }
    loader_write_file(loader_tmp("damaged.npy"), bad, len);
    lpq_array_t *b = NULL;
    int rc = lpq_load_npy(loader_tmp("damaged.npy"), &b, &err);
    if (rc == 0) {
      cr_assert(b->count * lpq_dtype_size(b->dtype) <= len, "round %d", r);
      lpq_array_free(&b);
    } else {
      cr_assert_null(b);
      cr_assert(strstr(err.msg, "damaged.npy") != NULL, "round %d: %s", r, err.msg);
    }
    free(bad);
  }
  free(raw);
  lpq_array_free(&a);
}
