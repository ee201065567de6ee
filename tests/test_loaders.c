/* tests/test_loaders.c: .npy and IDX loaders: round trips, every type, header versions, gzip,
** the real Fashion-MNIST files, and many damaged or hostile files that must give clear errors. */
#include "common/common.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define FASHION "/usr/share/datasets/fashion-mnist/"

static char tmpdir[64];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/lpq_loaders_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  if (d == NULL)
    return;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
      unlink(path);
    }
  closedir(d);
  rmdir(tmpdir);
}

TestSuite(loaders, .init = make_tmpdir, .fini = remove_tmpdir);

/* A path in the temp dir; each call returns a new buffer slot (a few in flight at a time). */
static const char *tmp(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot create %s", path);
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

static void write_gzip(const char *path, const void *data, size_t len) {
  gzFile gz = gzopen(path, "wb");
  cr_assert_not_null(gz);
  cr_assert_eq(gzwrite(gz, data, (unsigned)len), (int)len);
  cr_assert_eq(gzclose(gz), Z_OK);
}

/* Reads a whole file into a malloc'd buffer. */
static unsigned char *read_file(const char *path, size_t *len) {
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
  write_file(path, buf, total + len);
  free(buf);
}

/* The load must fail with a message that names the file and contains `what`. */
static void expect_error(int (*load)(const char *, lpq_array_t **, lpq_error_t *),
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

static void fill_pattern(lpq_array_t *a) {
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

static void assert_same(const lpq_array_t *a, const lpq_array_t *b) {
  cr_assert_eq(a->dtype, b->dtype);
  cr_assert_eq(a->ndim, b->ndim);
  for (int i = 0; i < a->ndim; i++)
    cr_assert_eq(a->shape[i], b->shape[i]);
  cr_assert_eq(a->count, b->count);
  cr_assert_eq(memcmp(a->data, b->data, a->count * lpq_dtype_size(a->dtype)), 0);
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
      fill_pattern(a);
      const char *path = tmp("round.npy");
      cr_assert_eq(lpq_save_npy(path, a, &err), 0, "%s", err.msg);
      /* numpy's layout: the data starts on a 64-byte boundary, the header ends in '\n' */
      size_t len;
      unsigned char *raw = read_file(path, &len);
      size_t data_off = len - a->count * lpq_dtype_size(a->dtype);
      cr_assert_eq(data_off % 64, 0);
      cr_assert_eq(raw[data_off - 1], '\n');
      free(raw);
      lpq_array_t *b = NULL;
      cr_assert_eq(lpq_load_npy(path, &b, &err), 0, "%s %s: %s", lpq_dtype_name(types[t]),
                   "load", err.msg);
      assert_same(a, b);
      lpq_array_t *c = NULL;
      cr_assert_eq(lpq_load_array(path, &c, &err), 0, "%s", err.msg);
      assert_same(a, c);
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
      const char *path = tmp("v.npy");
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
    write_npy_raw(tmp("b.npy"), 1, dict, data, 3);
    lpq_array_t *a = NULL;
    lpq_error_t err = {0};
    cr_assert_eq(lpq_load_npy(tmp("b.npy"), &a, &err), 0, "%s: %s", descr[i], err.msg);
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
    write_npy_raw(tmp("bad.npy"), 1 + (int)(i % 2), cases[i].dict, data, sizeof data);
    expect_error(lpq_load_npy, tmp("bad.npy"), cases[i].what);
  }
}

Test(loaders, npy_bad_preamble) {
  unsigned char buf[128];
  memset(buf, ' ', sizeof buf);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);

  write_file(tmp("empty.npy"), buf, 0);
  expect_error(lpq_load_npy, tmp("empty.npy"), "bad magic");
  write_file(tmp("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00", 10);
  expect_error(lpq_load_npy, tmp("magic.npy"), "bad magic");
  buf[6] = 4;
  write_file(tmp("v4.npy"), buf, sizeof buf);
  expect_error(lpq_load_npy, tmp("v4.npy"), "version 4.0");
  buf[6] = 1;
  buf[8] = 0;
  buf[9] = 0;
  write_file(tmp("hlen0.npy"), buf, sizeof buf);
  expect_error(lpq_load_npy, tmp("hlen0.npy"), "header length 0");
  buf[6] = 2; /* a 4-byte header length of 0x7f000000: hostile */
  buf[8] = 0, buf[9] = 0, buf[10] = 0, buf[11] = 0x7f;
  write_file(tmp("hlen_big.npy"), buf, sizeof buf);
  expect_error(lpq_load_npy, tmp("hlen_big.npy"), "out of range");
  buf[6] = 1; /* header length 1000 in a 128-byte file */
  buf[8] = 1000 & 0xff, buf[9] = 1000 >> 8;
  write_file(tmp("hlen_lie.npy"), buf, sizeof buf);
  expect_error(lpq_load_npy, tmp("hlen_lie.npy"), "truncated in the header at byte 128 of 1010");
  buf[8] = 118, buf[9] = 0;
  memcpy(buf + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", 57);
  buf[20] = '\0';
  write_file(tmp("nul.npy"), buf, sizeof buf);
  expect_error(lpq_load_npy, tmp("nul.npy"), "NUL");
  expect_error(lpq_load_npy, tmp("does_not_exist.npy"), "No such file");
  expect_error(lpq_load_npy, tmpdir, "not a regular file");
}

/* Every prefix of a valid file is an error, never a crash. */
Test(loaders, npy_every_truncation) {
  int64_t shape[2] = {3, 4};
  lpq_error_t err = {0};
  lpq_array_t *a = lpq_array_new(LPQ_DT_I32, 2, shape, &err);
  fill_pattern(a);
  cr_assert_eq(lpq_save_npy(tmp("full.npy"), a, &err), 0, "%s", err.msg);
  size_t len;
  unsigned char *raw = read_file(tmp("full.npy"), &len);
  for (size_t cut = 0; cut < len; cut++) {
    write_file(tmp("cut.npy"), raw, cut);
    lpq_array_t *b = NULL;
    int rc = lpq_load_npy(tmp("cut.npy"), &b, &err);
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
  fill_pattern(a);
  cr_assert_eq(lpq_save_npy(tmp("good.npy"), a, &err), 0, "%s", err.msg);
  size_t len;
  unsigned char *raw = read_file(tmp("good.npy"), &len);
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
    write_file(tmp("damaged.npy"), bad, len);
    lpq_array_t *b = NULL;
    int rc = lpq_load_npy(tmp("damaged.npy"), &b, &err);
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

/* ---- IDX ----------------------------------------------------------------------------------- */

/* An IDX file in memory: magic, big-endian dims, then `data` as given (already big-endian). */
static unsigned char *idx_bytes(int type, int ndim, const uint32_t *dims, const void *data,
                                size_t data_len, size_t *len) {
  *len = 4 + 4 * (size_t)ndim + data_len;
  unsigned char *b = malloc(*len);
  cr_assert_not_null(b);
  b[0] = 0, b[1] = 0, b[2] = (unsigned char)type, b[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++)
    for (int k = 0; k < 4; k++)
      b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
  if (data_len)
    memcpy(b + 4 + 4 * ndim, data, data_len);
  return b;
}

static void load_both_ways(const unsigned char *bytes, size_t len, lpq_array_t **raw,
                           lpq_array_t **gz) {
  lpq_error_t err = {0};
  write_file(tmp("a.idx"), bytes, len);
  write_gzip(tmp("a.idx.gz"), bytes, len);
  cr_assert_eq(lpq_load_idx(tmp("a.idx"), raw, &err), 0, "raw: %s", err.msg);
  cr_assert_eq(lpq_load_idx(tmp("a.idx.gz"), gz, &err), 0, "gzip: %s", err.msg);
  assert_same(*raw, *gz);
}

Test(loaders, idx_every_type_raw_and_gzip) {
  /* Big-endian payloads of known values: one test case per type code. */
  const uint32_t dims[2] = {2, 3};
  const unsigned char u8[6] = {0, 1, 2, 127, 128, 255};
  const unsigned char be16[12] = {0x00, 0x01, 0xFF, 0xFF, 0x80, 0x00,
                                  0x7F, 0xFF, 0x12, 0x34, 0xFE, 0xDC};
  const int16_t want16[6] = {1, -1, -32768, 32767, 0x1234, (int16_t)0xFEDC};
  unsigned char be32[24], bef[24], bed[48];
  const int32_t i32[6] = {0, -1, 123456789, INT32_MIN, INT32_MAX, 42};
  const float f32[6] = {0.f, -1.5f, 3.25e-7f, 1e30f, -0.f, 255.f};
  const double f64[6] = {0.0, -1.5, 1e-300, 1e300, M_PI, -2.0};
  for (int i = 0; i < 6; i++) {
    uint32_t v, fv;
    uint64_t dv;
    memcpy(&v, &i32[i], 4);
    memcpy(&fv, &f32[i], 4);
    memcpy(&dv, &f64[i], 8);
    for (int k = 0; k < 4; k++) {
      be32[4 * i + k] = (unsigned char)(v >> (24 - 8 * k));
      bef[4 * i + k] = (unsigned char)(fv >> (24 - 8 * k));
    }
    for (int k = 0; k < 8; k++)
      bed[8 * i + k] = (unsigned char)(dv >> (56 - 8 * k));
  }
  const struct {
    int code;
    const void *data;
    size_t len;
    lpq_dtype_t dtype;
  } cases[] = {
      {0x08, u8, 6, LPQ_DT_U8},     {0x09, u8, 6, LPQ_DT_I8},    {0x0B, be16, 12, LPQ_DT_I32},
      {0x0C, be32, 24, LPQ_DT_I32}, {0x0D, bef, 24, LPQ_DT_F32}, {0x0E, bed, 48, LPQ_DT_F64},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t len;
    unsigned char *bytes = idx_bytes(cases[c].code, 2, dims, cases[c].data, cases[c].len, &len);
    lpq_array_t *raw = NULL, *gz = NULL;
    load_both_ways(bytes, len, &raw, &gz);
    cr_assert_eq(raw->dtype, cases[c].dtype, "type 0x%02X", cases[c].code);
    cr_assert_eq(raw->ndim, 2);
    cr_assert_eq(raw->shape[0], 2);
    cr_assert_eq(raw->shape[1], 3);
    for (int i = 0; i < 6; i++) {
      switch (cases[c].code) {
      case 0x08: cr_assert_eq(((uint8_t *)raw->data)[i], u8[i]); break;
      case 0x09: cr_assert_eq(((int8_t *)raw->data)[i], (int8_t)u8[i]); break;
      case 0x0B: cr_assert_eq(((int32_t *)raw->data)[i], want16[i]); break;
      case 0x0C: cr_assert_eq(((int32_t *)raw->data)[i], i32[i]); break;
      case 0x0D: cr_assert_eq(memcmp(&((float *)raw->data)[i], &f32[i], 4), 0); break;
      case 0x0E: cr_assert_eq(((double *)raw->data)[i], f64[i]); break;
      }
    }
    lpq_array_t *any = NULL;
    lpq_error_t err = {0};
    cr_assert_eq(lpq_load_array(tmp("a.idx.gz"), &any, &err), 0, "%s", err.msg);
    assert_same(raw, any);
    lpq_array_free(&any);
    lpq_array_free(&raw);
    lpq_array_free(&gz);
    free(bytes);
  }
}

/* The gzip magic decides, not the file name: a gzip file named .idx and a raw one named .gz. */
Test(loaders, idx_detects_gzip_by_content) {
  const uint32_t dims[1] = {4};
  const unsigned char data[4] = {9, 8, 7, 6};
  size_t len;
  unsigned char *bytes = idx_bytes(0x08, 1, dims, data, 4, &len);
  write_gzip(tmp("looks_raw.idx"), bytes, len);
  write_file(tmp("looks_gz.gz"), bytes, len);
  lpq_array_t *a = NULL, *b = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_load_array(tmp("looks_raw.idx"), &a, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_load_array(tmp("looks_gz.gz"), &b, &err), 0, "%s", err.msg);
  assert_same(a, b);
  cr_assert_eq(((uint8_t *)a->data)[3], 6);
  lpq_array_free(&a);
  lpq_array_free(&b);
  free(bytes);
}

Test(loaders, idx_bad_files) {
  const unsigned char data[64] = {0};
  const uint32_t small[2] = {2, 2}, absurd[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 3},
                 huge[2] = {100000, 100000};
  size_t len;
  unsigned char *b;

  b = idx_bytes(0x08, 2, small, data, 4, &len);
  b[1] = 3;
  write_file(tmp("magic.idx"), b, len);
  expect_error(lpq_load_idx, tmp("magic.idx"), "bad magic");
  write_gzip(tmp("magic.gz"), b, len);
  expect_error(lpq_load_idx, tmp("magic.gz"), "bad magic");
  b[1] = 0, b[2] = 0x0A;
  write_file(tmp("type.idx"), b, len);
  expect_error(lpq_load_idx, tmp("type.idx"), "type code 0x0A");
  b[2] = 0x08, b[3] = 0;
  write_file(tmp("ndim0.idx"), b, len);
  expect_error(lpq_load_idx, tmp("ndim0.idx"), "0 dimensions");
  b[3] = 200;
  write_file(tmp("ndim200.idx"), b, len);
  expect_error(lpq_load_idx, tmp("ndim200.idx"), "200 dimensions");
  free(b);

  b = idx_bytes(0x0C, 4, absurd, data, 0, &len);
  write_file(tmp("absurd.idx"), b, len);
  expect_error(lpq_load_idx, tmp("absurd.idx"), "overflows");
  free(b);
  b = idx_bytes(0x0D, 2, huge, data, 64, &len);
  write_file(tmp("huge.idx"), b, len);
  expect_error(lpq_load_idx, tmp("huge.idx"), "truncated: shape [100000,100000] of float32");
  write_gzip(tmp("huge.gz"), b, len);
  expect_error(lpq_load_idx, tmp("huge.gz"), "more than a gzip file");
  free(b);
  /* a lie a gzip file could hold: found when the data runs out */
  const uint32_t medium[1] = {1000};
  b = idx_bytes(0x08, 1, medium, data, 64, &len);
  write_gzip(tmp("short.gz"), b, len);
  expect_error(lpq_load_idx, tmp("short.gz"), "truncated: data ends at byte 72 of 1008");
  free(b);
  b = idx_bytes(0x08, 2, small, data, 10, &len);
  write_file(tmp("extra.idx"), b, len);
  expect_error(lpq_load_idx, tmp("extra.idx"), "6 bytes after the data");
  write_gzip(tmp("extra.gz"), b, len);
  expect_error(lpq_load_idx, tmp("extra.gz"), "bytes after the 16");
  free(b);
  static const char junk[] = "PK\x03\x04 not an array";
  write_file(tmp("junk.bin"), junk, sizeof junk - 1);
  expect_error(lpq_load_array, tmp("junk.bin"), "neither a .npy file nor an IDX file");
  expect_error(lpq_load_idx, tmp("missing.idx"), "No such file");
}

/* Every truncation of a raw and of a gzip IDX file, and corrupted gzip bytes: an error. */
Test(loaders, idx_every_truncation_and_corruption) {
  const uint32_t dims[3] = {3, 5, 7};
  unsigned char data[105];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 7);
  size_t len, glen;
  unsigned char *b = idx_bytes(0x08, 3, dims, data, sizeof data, &len);
  lpq_error_t err = {0};
  for (size_t cut = 0; cut < len; cut++) {
    write_file(tmp("cut.idx"), b, cut);
    lpq_array_t *a = NULL;
    cr_assert(lpq_load_array(tmp("cut.idx"), &a, &err) < 0 && a == NULL, "cut at %zu", cut);
    cr_assert(strstr(err.msg, "cut.idx") != NULL, "%s", err.msg);
  }
  write_gzip(tmp("full.gz"), b, len);
  unsigned char *gz = read_file(tmp("full.gz"), &glen);
  for (size_t cut = 2; cut < glen; cut++) {
    write_file(tmp("cut.gz"), gz, cut);
    lpq_array_t *a = NULL;
    cr_assert(lpq_load_idx(tmp("cut.gz"), &a, &err) < 0 && a == NULL, "gzip cut at %zu", cut);
    cr_assert(strstr(err.msg, "cut.gz") != NULL, "%s", err.msg);
  }
  /* Flip each byte of the deflate stream and the CRC trailer in turn (the 10-byte gzip header
  ** has fields zlib ignores): never a crash; a changed result must not pass silently. */
  for (size_t pos = 10; pos < glen; pos++) {
    gz[pos] ^= 0x5A;
    write_file(tmp("flip.gz"), gz, glen);
    lpq_array_t *a = NULL;
    int rc = lpq_load_idx(tmp("flip.gz"), &a, &err);
    if (rc == 0) {
      cr_assert_eq(a->count, sizeof data);
      cr_assert_eq(memcmp(a->data, data, sizeof data), 0, "flip at %zu gave other data", pos);
    } else {
      cr_assert_null(a);
      cr_assert(strstr(err.msg, "flip.gz") != NULL, "%s", err.msg);
    }
    lpq_array_free(&a);
    gz[pos] ^= 0x5A;
  }
  free(gz);
  free(b);
}

/* Random damage to a raw and a gzip IDX file's first bytes (fixed-seed generator): a size
** that fits, or an error naming the file; never a crash. Files of 0 and 1 bytes too. */
Test(loaders, idx_random_damage) {
  const uint32_t dims[2] = {6, 5};
  unsigned char data[30];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(200 - i);
  size_t len, glen;
  unsigned char *raw = idx_bytes(0x08, 2, dims, data, sizeof data, &len);
  write_gzip(tmp("good.gz"), raw, len);
  unsigned char *gz = read_file(tmp("good.gz"), &glen);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  const int rounds = getenv("LPQ_ASAN") ? 200 : 1000;
  lpq_error_t err = {0};
  for (int r = 0; r < rounds; r++) {
    int zipped = r % 2;
    size_t n = zipped ? glen : len;
    unsigned char *bad = malloc(n);
    cr_assert_not_null(bad);
    memcpy(bad, zipped ? gz : raw, n);
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    bad[state % (zipped ? n : 12)] = (unsigned char)(state >> 40);
    write_file(tmp("damaged.idx"), bad, n);
    lpq_array_t *a = NULL;
    if (lpq_load_array(tmp("damaged.idx"), &a, &err) == 0) {
      cr_assert(a->count * lpq_dtype_size(a->dtype) <= sizeof data * 8, "round %d", r);
      lpq_array_free(&a);
    } else {
      cr_assert_null(a);
      cr_assert(strstr(err.msg, "damaged.idx") != NULL, "round %d: %s", r, err.msg);
    }
    free(bad);
  }
  for (size_t n = 0; n < 2; n++) {
    write_file(tmp("tiny"), "\0", n);
    expect_error(lpq_load_array, tmp("tiny"), n ? "bad magic" : "neither");
  }
  free(gz);
  free(raw);
}

/* ---- images to model input and the real Fashion-MNIST files ------------------------------ */

Test(loaders, images_to_f32_normalises_and_adds_channel) {
  int64_t shape[3] = {2, 2, 3};
  lpq_error_t err = {0};
  lpq_array_t *u8 = lpq_array_new(LPQ_DT_U8, 3, shape, &err), *x = NULL, *y = NULL;
  for (size_t i = 0; i < u8->count; i++)
    ((uint8_t *)u8->data)[i] = (uint8_t)(i * 23);
  cr_assert_eq(lpq_images_to_f32(u8, 0.25, 0.5, &x, &err), 0, "%s", err.msg);
  cr_assert_eq(x->dtype, LPQ_DT_F32);
  cr_assert_eq(x->ndim, 4);
  const int64_t want[4] = {2, 1, 2, 3};
  for (int i = 0; i < 4; i++)
    cr_assert_eq(x->shape[i], want[i]);
  for (size_t i = 0; i < x->count; i++) {
    double v = (((uint8_t *)u8->data)[i] / 255.0 - 0.25) / 0.5;
    cr_assert_float_eq(((float *)x->data)[i], v, 1e-6);
  }
  /* float32 input is only normalised */
  cr_assert_eq(lpq_images_to_f32(x, 1.0, 2.0, &y, &err), 0, "%s", err.msg);
  cr_assert_eq(y->ndim, 4);
  for (size_t i = 0; i < y->count; i++)
    cr_assert_float_eq(((float *)y->data)[i], (((float *)x->data)[i] - 1.0) / 2.0, 1e-6);
  lpq_array_free(&y);
  cr_assert_eq(lpq_images_to_f32(u8, 0.0, 0.0, &y, &err), LPQ_EINVAL);
  cr_assert_null(y);
  cr_assert_eq(lpq_images_to_f32(u8, NAN, 1.0, &y, &err), LPQ_EINVAL);
  lpq_array_t *i64 = lpq_array_new(LPQ_DT_I64, 3, shape, &err);
  cr_assert_eq(lpq_images_to_f32(i64, 0.0, 1.0, &y, &err), LPQ_EUNSUP);
  cr_assert(strstr(err.msg, "int64") != NULL, "%s", err.msg);
  lpq_array_free(&i64);
  lpq_array_free(&x);
  lpq_array_free(&u8);
}

static lpq_array_t *load_or_fail(const char *path) {
  lpq_array_t *a = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_load_array(path, &a, &err), 0, "%s", err.msg);
  return a;
}

static void check_fashion_split(const char *images_path, const char *labels_path, int64_t n) {
  lpq_array_t *images = load_or_fail(images_path), *labels = load_or_fail(labels_path);
  cr_assert_eq(images->shape[0], n, "%s", images_path);
  cr_assert_eq(images->dtype, LPQ_DT_U8);
  cr_assert_eq(images->ndim, 3);
  cr_assert_eq(images->shape[1], 28);
  cr_assert_eq(images->shape[2], 28);
  cr_assert_eq(labels->dtype, LPQ_DT_U8);
  cr_assert_eq(labels->ndim, 1);
  cr_assert_eq(labels->shape[0], images->shape[0], "one label per image");
  size_t per_class[10] = {0};
  for (size_t i = 0; i < labels->count; i++) {
    uint8_t l = ((uint8_t *)labels->data)[i];
    cr_assert(l <= 9, "label %u at %zu", l, i);
    per_class[l]++;
  }
  for (int c = 0; c < 10; c++)
    cr_assert(per_class[c] > 0, "class %d never appears", c);
  /* pixels are not all one value: the data is images, not zeros */
  uint8_t lo = 255, hi = 0;
  for (size_t i = 0; i < images->count; i += 97) {
    uint8_t p = ((uint8_t *)images->data)[i];
    lo = p < lo ? p : lo;
    hi = p > hi ? p : hi;
  }
  cr_assert(lo == 0 && hi > 200, "pixel range %u..%u", lo, hi);
  lpq_array_free(&images);
  lpq_array_free(&labels);
}

Test(loaders, fashion_mnist_real_files) {
  check_fashion_split(FASHION "t10k-images-idx3-ubyte.gz", FASHION "t10k-labels-idx1-ubyte.gz",
                      10000);
  check_fashion_split(FASHION "train-images-idx3-ubyte.gz", FASHION "train-labels-idx1-ubyte.gz",
                      60000);
}

/* The committed test images (written by tools/train_models.py with numpy) are the first 256
** IDX test images normalised the same way, bit for bit; the labels agree too. */
Test(loaders, bundled_test_images_match_idx) {
  lpq_array_t *idx = load_or_fail(FASHION "t10k-images-idx3-ubyte.gz");
  lpq_array_t *labels = load_or_fail(FASHION "t10k-labels-idx1-ubyte.gz");
  lpq_array_t *npy = load_or_fail("models/fashion_test_256.npy");
  lpq_array_t *npy_labels = load_or_fail("models/fashion_test_256_labels.npy");
  lpq_array_t *x = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_images_to_f32(idx, 0.2860, 0.3530, &x, &err), 0, "%s", err.msg);
  cr_assert_eq(npy->dtype, LPQ_DT_F32);
  cr_assert_eq(npy->ndim, 4);
  const int64_t want[4] = {256, 1, 28, 28};
  for (int i = 0; i < 4; i++)
    cr_assert_eq(npy->shape[i], want[i]);
  cr_assert_eq(memcmp(npy->data, x->data, npy->count * sizeof(float)), 0,
               "normalised IDX pixels differ from models/fashion_test_256.npy");
  cr_assert_eq(npy_labels->dtype, LPQ_DT_I64);
  cr_assert_eq(npy_labels->count, 256);
  for (size_t i = 0; i < 256; i++)
    cr_assert_eq(((int64_t *)npy_labels->data)[i], ((uint8_t *)labels->data)[i]);
  lpq_array_free(&x);
  lpq_array_free(&idx);
  lpq_array_free(&labels);
  lpq_array_free(&npy);
  lpq_array_free(&npy_labels);
}

/* Each bundled model's reference logits are float32 [256,10] from a trained network: their
** top-1 on the 256 committed labels is far above chance. The calibration images are 256
** normalised training images, distinct from the test images. */
Test(loaders, bundled_reference_files) {
  const char *models[] = {"resnet18", "mobilenetv2", "vit"};
  lpq_array_t *labels = load_or_fail("models/fashion_test_256_labels.npy");
  for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
    char path[128];
    snprintf(path, sizeof path, "models/%s_ref_logits.npy", models[m]);
    lpq_array_t *logits = load_or_fail(path);
    cr_assert_eq(logits->dtype, LPQ_DT_F32, "%s", path);
    cr_assert_eq(logits->ndim, 2, "%s", path);
    cr_assert_eq(logits->shape[0], 256, "%s", path);
    cr_assert_eq(logits->shape[1], 10, "%s", path);
    size_t correct = 0;
    for (size_t i = 0; i < 256; i++) {
      const float *row = (const float *)logits->data + 10 * i;
      int best = 0;
      for (int c = 1; c < 10; c++)
        best = row[c] > row[best] ? c : best;
      correct += best == ((int64_t *)labels->data)[i];
    }
    cr_assert(correct >= 205, "%s: top-1 %zu of 256 (a trained model gets > 80%%)", path,
              correct);
    lpq_array_free(&logits);
  }
  lpq_array_t *calib = load_or_fail("models/fashion_calib_256.npy");
  lpq_array_t *test = load_or_fail("models/fashion_test_256.npy");
  cr_assert_eq(calib->dtype, LPQ_DT_F32);
  cr_assert_eq(calib->count, test->count);
  cr_assert_neq(memcmp(calib->data, test->data, 28 * 28 * sizeof(float)), 0);
  lpq_array_free(&calib);
  lpq_array_free(&test);
  lpq_array_free(&labels);
}
