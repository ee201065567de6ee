/* tests/test_loaders_idx.c: IDX files raw and gzip, content sniffing, damaged files; image
** normalisation; the real Fashion-MNIST files and the bundled models' data files. */
#include "common/common.h"
#include "tests/loader_files.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(loaders_idx, .init = loader_make_tmpdir, .fini = loader_remove_tmpdir);

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
  loader_write_file(loader_tmp("a.idx"), bytes, len);
  loader_write_gzip(loader_tmp("a.idx.gz"), bytes, len);
  cr_assert_eq(lpq_load_idx(loader_tmp("a.idx"), raw, &err), 0, "raw: %s", err.msg);
  cr_assert_eq(lpq_load_idx(loader_tmp("a.idx.gz"), gz, &err), 0, "gzip: %s", err.msg);
  loader_assert_same(*raw, *gz);
}

Test(loaders_idx, idx_every_type_raw_and_gzip) {
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
    cr_assert_eq(lpq_load_array(loader_tmp("a.idx.gz"), &any, &err), 0, "%s", err.msg);
    loader_assert_same(raw, any);
    lpq_array_free(&any);
    lpq_array_free(&raw);
    lpq_array_free(&gz);
    free(bytes);
  }
}

/* The gzip magic decides, not the file name: a gzip file named .idx and a raw one named .gz. */
Test(loaders_idx, idx_detects_gzip_by_content) {
  const uint32_t dims[1] = {4};
  const unsigned char data[4] = {9, 8, 7, 6};
  size_t len;
  unsigned char *bytes = idx_bytes(0x08, 1, dims, data, 4, &len);
  loader_write_gzip(loader_tmp("looks_raw.idx"), bytes, len);
  loader_write_file(loader_tmp("looks_gz.gz"), bytes, len);
  lpq_array_t *a = NULL, *b = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_load_array(loader_tmp("looks_raw.idx"), &a, &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_load_array(loader_tmp("looks_gz.gz"), &b, &err), 0, "%s", err.msg);
  loader_assert_same(a, b);
  cr_assert_eq(((uint8_t *)a->data)[3], 6);
  lpq_array_free(&a);
  lpq_array_free(&b);
  free(bytes);
}

Test(loaders_idx, idx_bad_files) {
  const unsigned char data[64] = {0};
  const uint32_t small[2] = {2, 2}, absurd[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 3},
                 huge[2] = {100000, 100000};
  size_t len;
  unsigned char *b;

  b = idx_bytes(0x08, 2, small, data, 4, &len);
  b[1] = 3;
  loader_write_file(loader_tmp("magic.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("magic.idx"), "bad magic");
  loader_write_gzip(loader_tmp("magic.gz"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("magic.gz"), "bad magic");
  b[1] = 0, b[2] = 0x0A;
  loader_write_file(loader_tmp("type.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("type.idx"), "type code 0x0A");
  b[2] = 0x08, b[3] = 0;
  loader_write_file(loader_tmp("ndim0.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("ndim0.idx"), "0 dimensions");
  b[3] = 200;
  loader_write_file(loader_tmp("ndim200.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("ndim200.idx"), "200 dimensions");
  free(b);

  b = idx_bytes(0x0C, 4, absurd, data, 0, &len);
  loader_write_file(loader_tmp("absurd.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("absurd.idx"), "overflows");
  free(b);
  b = idx_bytes(0x0D, 2, huge, data, 64, &len);
  loader_write_file(loader_tmp("huge.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("huge.idx"), "truncated: shape [100000,100000] of float32");
  loader_write_gzip(loader_tmp("huge.gz"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("huge.gz"), "more than a gzip file");
  free(b);
  /* a lie a gzip file could hold: found when the data runs out */
  const uint32_t medium[1] = {1000};
  b = idx_bytes(0x08, 1, medium, data, 64, &len);
  loader_write_gzip(loader_tmp("short.gz"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("short.gz"), "truncated: data ends at byte 72 of 1008");
  free(b);
  b = idx_bytes(0x08, 2, small, data, 10, &len);
  loader_write_file(loader_tmp("extra.idx"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("extra.idx"), "6 bytes after the data");
  loader_write_gzip(loader_tmp("extra.gz"), b, len);
  loader_expect_error(lpq_load_idx, loader_tmp("extra.gz"), "bytes after the 16");
  free(b);
  static const char junk[] = "PK\x03\x04 not an array";
  loader_write_file(loader_tmp("junk.bin"), junk, sizeof junk - 1);
  loader_expect_error(lpq_load_array, loader_tmp("junk.bin"), "neither a .npy file nor an IDX file");
  loader_expect_error(lpq_load_idx, loader_tmp("missing.idx"), "No such file");
}

/* Every truncation of a raw and of a gzip IDX file, and corrupted gzip bytes: an error. */
Test(loaders_idx, idx_every_truncation_and_corruption) {
  const uint32_t dims[3] = {3, 5, 7};
  unsigned char data[105];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 7);
  size_t len, glen;
  unsigned char *b = idx_bytes(0x08, 3, dims, data, sizeof data, &len);
  lpq_error_t err = {0};
  for (size_t cut = 0; cut < len; cut++) {
    loader_write_file(loader_tmp("cut.idx"), b, cut);
    lpq_array_t *a = NULL;
    cr_assert(lpq_load_array(loader_tmp("cut.idx"), &a, &err) < 0 && a == NULL, "cut at %zu", cut);
    cr_assert(strstr(err.msg, "cut.idx") != NULL, "%s", err.msg);
  }
  loader_write_gzip(loader_tmp("full.gz"), b, len);
  unsigned char *gz = loader_read_file(loader_tmp("full.gz"), &glen);
  for (size_t cut = 2; cut < glen; cut++) {
    loader_write_file(loader_tmp("cut.gz"), gz, cut);
    lpq_array_t *a = NULL;
    cr_assert(lpq_load_idx(loader_tmp("cut.gz"), &a, &err) < 0 && a == NULL, "gzip cut at %zu", cut);
    cr_assert(strstr(err.msg, "cut.gz") != NULL, "%s", err.msg);
  }
  /* Flip each byte of the deflate stream and the CRC trailer in turn (the 10-byte gzip header
  ** has fields zlib ignores): never a crash; a changed result must not pass silently. */
  for (size_t pos = 10; pos < glen; pos++) {
    gz[pos] ^= 0x5A;
    loader_write_file(loader_tmp("flip.gz"), gz, glen);
    lpq_array_t *a = NULL;
    int rc = lpq_load_idx(loader_tmp("flip.gz"), &a, &err);
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
Test(loaders_idx, idx_random_damage) {
  const uint32_t dims[2] = {6, 5};
  unsigned char data[30];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(200 - i);
  size_t len, glen;
  unsigned char *raw = idx_bytes(0x08, 2, dims, data, sizeof data, &len);
  loader_write_gzip(loader_tmp("good.gz"), raw, len);
  unsigned char *gz = loader_read_file(loader_tmp("good.gz"), &glen);
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
    loader_write_file(loader_tmp("damaged.idx"), bad, n);
    lpq_array_t *a = NULL;
    if (lpq_load_array(loader_tmp("damaged.idx"), &a, &err) == 0) {
      cr_assert(a->count * lpq_dtype_size(a->dtype) <= sizeof data * 8, "round %d", r);
      lpq_array_free(&a);
    } else {
      cr_assert_null(a);
      cr_assert(strstr(err.msg, "damaged.idx") != NULL, "round %d: %s", r, err.msg);
    }
    free(bad);
  }
  for (size_t n = 0; n < 2; n++) {
    loader_write_file(loader_tmp("tiny"), "\0", n);
    loader_expect_error(lpq_load_array, loader_tmp("tiny"), n ? "bad magic" : "neither");
  }
  free(gz);
  free(raw);
}

/* ---- images to model input and the real Fashion-MNIST files ------------------------------ */

Test(loaders_idx, images_to_f32_normalises_and_adds_channel) {
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

static void check_fashion_split(const char *images_path, const char *labels_path, int64_t n) {
  lpq_array_t *images = loader_load_or_fail(images_path), *labels = loader_load_or_fail(labels_path);
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

Test(loaders_idx, fashion_mnist_real_files) {
  check_fashion_split(FASHION "t10k-images-idx3-ubyte.gz", FASHION "t10k-labels-idx1-ubyte.gz",
                      10000);
  check_fashion_split(FASHION "train-images-idx3-ubyte.gz", FASHION "train-labels-idx1-ubyte.gz",
                      60000);
}

/* The committed test images (written by tools/train_models.py with numpy) are the first 256
** IDX test images normalised the same way, bit for bit; the labels agree too. */
Test(loaders_idx, bundled_test_images_match_idx) {
  lpq_array_t *idx = loader_load_or_fail(FASHION "t10k-images-idx3-ubyte.gz");
  lpq_array_t *labels = loader_load_or_fail(FASHION "t10k-labels-idx1-ubyte.gz");
  lpq_array_t *npy = loader_load_or_fail("models/fashion_test_256.npy");
  lpq_array_t *npy_labels = loader_load_or_fail("models/fashion_test_256_labels.npy");
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
Test(loaders_idx, bundled_reference_files) {
  const char *models[] = {"resnet18", "mobilenetv2", "vit"};
  lpq_array_t *labels = loader_load_or_fail("models/fashion_test_256_labels.npy");
  for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
    char path[128];
    snprintf(path, sizeof path, "models/%s_ref_logits.npy", models[m]);
    lpq_array_t *logits = loader_load_or_fail(path);
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
  lpq_array_t *calib = loader_load_or_fail("models/fashion_calib_256.npy");
  lpq_array_t *test = loader_load_or_fail("models/fashion_test_256.npy");
  cr_assert_eq(calib->dtype, LPQ_DT_F32);
  cr_assert_eq(calib->count, test->count);
  cr_assert_neq(memcmp(calib->data, test->data, 28 * 28 * sizeof(float)), 0);
  lpq_array_free(&calib);
  lpq_array_free(&test);
  lpq_array_free(&labels);
}
