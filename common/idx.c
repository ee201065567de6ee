/* common/idx.c: MNIST-family IDX files, raw or gzip-compressed; and content-sniffing loading. */
#include "common/common_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* deflate never compresses better than about 1032:1, so a gzip file of S bytes holds at most
** this many: a header claiming more lies, and is refused before anything is allocated. */
#define GZIP_MAX_RATIO 1032
#define GZIP_SLACK 4096

/* The IDX type codes: element type in the file and in memory. int16 (0x0B) has no lpq type
** and widens to int32. */
static const struct {
  unsigned char code;
  size_t file_size;
  lpq_dtype_t dtype;
  const char *name;
} idx_types[] = {
    {0x08, 1, LPQ_DT_U8, "uint8"},  {0x09, 1, LPQ_DT_I8, "int8"},
    {0x0B, 2, LPQ_DT_I32, "int16"}, {0x0C, 4, LPQ_DT_I32, "int32"},
    {0x0D, 4, LPQ_DT_F32, "float32"}, {0x0E, 8, LPQ_DT_F64, "float64"},
};
#define IDX_NTYPES (sizeof idx_types / sizeof idx_types[0])

/* Reads up to len bytes; returns how many (short only at the end or on error). */
static size_t gz_read_all(gzFile gz, void *buf, size_t len, int *failed) {
  size_t done = 0;
  *failed = 0;
  while (done < len) {
    size_t chunk = len - done > (1u << 30) ? (1u << 30) : len - done;
    int n = gzread(gz, (unsigned char *)buf + done, (unsigned)chunk);
    if (n < 0) {
      *failed = 1;
      break;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  return done;
}

static int gz_fail(gzFile gz, const char *path, const char *what, lpq_error_t *err) {
  int zerr = 0;
  const char *msg = gzerror(gz, &zerr);
  return lpq_errorf(err, LPQ_EFORMAT, "%s: corrupt gzip data in the %s: %s", path, what,
                    msg ? msg : "unknown zlib error");
}

/* Widens big-endian int16 values, stored in the first half of data's bytes, to int32 in
** place (back to front, so nothing is overwritten before it is read). */
static void widen_int16_be(void *data, size_t count) {
  const unsigned char *src = data;
  int32_t *dst = data;
  for (size_t i = count; i-- > 0;)
    dst[i] = (int16_t)(uint16_t)((unsigned)src[2 * i] << 8 | src[2 * i + 1]);
}

int lpq_load_idx(const char *path, lpq_array_t **out, lpq_error_t *err) {
  if (path == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_load_idx: NULL argument");
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return lpq_errorf(err, LPQ_EIO, "%s: not a regular file", path);
  /* gzread reads raw files transparently; the gzip magic tells which bound on the size of
  ** the data applies. */
  FILE *probe = fopen(path, "rb");
  if (probe == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  unsigned char magic2[2] = {0, 0};
  size_t nmagic = fread(magic2, 1, 2, probe);
  fclose(probe);
  int is_gzip = nmagic == 2 && magic2[0] == 0x1f && magic2[1] == 0x8b;
  const char *kind = is_gzip ? " (gzip)" : "";

  gzFile gz = gzopen(path, "rb");
  if (gz == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
  int rc = 0, failed = 0;
  lpq_array_t *a = NULL;
  unsigned char head[4];
  size_t n = gz_read_all(gz, head, 4, &failed);
  if (failed) {
    rc = gz_fail(gz, path, "header", err);
    goto done;
  }
  if (n < 4 || head[0] != 0 || head[1] != 0) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s%s: bad magic (an IDX file starts with two zero "
                    "bytes, a type code and the number of dimensions)", path, kind);
    goto done;
  }
  size_t t = 0;
  while (t < IDX_NTYPES && idx_types[t].code != head[2])
    t++;
  if (t == IDX_NTYPES) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s%s: bad magic: type code 0x%02X is not an IDX type "
                    "(0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)", path, kind, head[2]);
    goto done;
  }
  int ndim = head[3];
  if (ndim < 1 || ndim > LPQ_MAX_DIMS) {
    rc = lpq_errorf(err, LPQ_EUNSUP, "%s%s: %d dimensions (lpq reads 1..%d)", path, kind, ndim,
                    LPQ_MAX_DIMS);
    goto done;
  }
  unsigned char dims[4 * LPQ_MAX_DIMS];
  size_t header_bytes = 4 + 4 * (size_t)ndim;
  n = gz_read_all(gz, dims, 4 * (size_t)ndim, &failed);
  if (failed) {
    rc = gz_fail(gz, path, "header", err);
    goto done;
  }
  if (n < 4 * (size_t)ndim) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s%s: truncated in the header at byte %zu of %zu", path,
                    kind, 4 + n, header_bytes);
    goto done;
  }
  int64_t shape[LPQ_MAX_DIMS];
  for (int i = 0; i < ndim; i++)
    shape[i] = (int64_t)((uint32_t)dims[4 * i] << 24 | (uint32_t)dims[4 * i + 1] << 16 |
                         (uint32_t)dims[4 * i + 2] << 8 | dims[4 * i + 3]);
  char shape_text[160];
  lpq_shape_str(ndim, shape, shape_text, sizeof shape_text);

  /* Check the size the header claims against what the file can hold, before allocating. */
  size_t file_size = (size_t)st.st_size, fsize = idx_types[t].file_size, count;
  if (lpq_shape_count(ndim, shape, fsize, SIZE_MAX, &count, NULL) != 0) {
    rc = lpq_errorf(err, LPQ_ERANGE, "%s%s: shape %s overflows (the header lies)", path, kind,
                    shape_text);
    goto done;
  }
  size_t data_bytes = count * fsize, total = header_bytes + data_bytes;
  if (!is_gzip && total != file_size) {
    if (total > file_size)
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: truncated: shape %s of %s needs %zu bytes, but "
                      "the file ends at byte %zu", path, shape_text, idx_types[t].name, total,
                      file_size);
    else
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: %zu bytes after the data that shape %s of %s "
                      "needs (the header lies or the file is damaged)", path, file_size - total,
                      shape_text, idx_types[t].name);
    goto done;
  }
  if (is_gzip && file_size <= (SIZE_MAX - GZIP_SLACK) / GZIP_MAX_RATIO &&
      total > file_size * GZIP_MAX_RATIO + GZIP_SLACK) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s (gzip): shape %s of %s needs %zu bytes, more than a "
                    "gzip file of %zu bytes can hold (the header lies)", path, shape_text,
                    idx_types[t].name, total, file_size);
    goto done;
  }
  lpq_error_t inner = {0};
  a = lpq_array_new(idx_types[t].dtype, ndim, shape, &inner);
  if (a == NULL) {
    rc = lpq_errorf(err, inner.code, "%s%s: %s", path, kind, inner.msg);
    goto done;
  }
  n = gz_read_all(gz, a->data, data_bytes, &failed);
  if (failed) {
    rc = gz_fail(gz, path, "data", err);
    goto done;
  }
  if (n < data_bytes) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s%s: truncated: data ends at byte %zu of %zu", path,
                    kind, header_bytes + n, total);
    goto done;
  }
  unsigned char extra;
  if (gz_read_all(gz, &extra, 1, &failed) != 0 || failed) {
    rc = failed ? gz_fail(gz, path, "trailer", err)
                : lpq_errorf(err, LPQ_EFORMAT, "%s%s: bytes after the %zu that shape %s of %s "
                             "needs (the header lies or the file is damaged)", path, kind,
                             total, shape_text, idx_types[t].name);
    goto done;
  }
  /* zlib reports a gzip stream cut short (even in its CRC trailer) as a soft error, not -1. */
  int zerr = Z_OK;
  gzerror(gz, &zerr);
  if (zerr != Z_OK) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s (gzip): truncated gzip stream (%s)", path,
                    gzerror(gz, &zerr));
    goto done;
  }
  /* IDX stores multi-byte values big-endian. */
  if (idx_types[t].code == 0x0B)
    widen_int16_be(a->data, count);
  else if (lpq__host_is_little_endian())
    lpq__bswap(a->data, count, fsize);
done:
  gzclose(gz);
  if (rc != 0)
    lpq_array_free(&a);
  *out = a;
  return rc;
}

/* ---- any supported file, by content ------------------------------------------------------ */

int lpq_load_array(const char *path, lpq_array_t **out, lpq_error_t *err) {
  if (path == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_load_array: NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  unsigned char head[6] = {0};
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  if (n == 6 && memcmp(head, "\x93NUMPY", 6) == 0)
    return lpq_load_npy(path, out, err);
  if ((n >= 2 && head[0] == 0x1f && head[1] == 0x8b) || (n >= 2 && head[0] == 0 && head[1] == 0))
    return lpq_load_idx(path, out, err);
  return lpq_errorf(err, LPQ_EFORMAT, "%s: bad magic: neither a .npy file nor an IDX file "
                    "(raw or gzip)", path);
}

/* ---- images to model input ----------------------------------------------------------------- */

int lpq_images_to_f32(const lpq_array_t *in, double mean, double std, lpq_array_t **out,
                      lpq_error_t *err) {
  if (in == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_images_to_f32: NULL argument");
  *out = NULL;
  if (!(std > 0.0) || !isfinite(std) || !isfinite(mean))
    return lpq_errorf(err, LPQ_EINVAL, "normalisation: std = %g must be positive and finite, "
                      "mean = %g finite", std, mean);
  if (in->dtype != LPQ_DT_U8 && in->dtype != LPQ_DT_F32)
    return lpq_errorf(err, LPQ_EUNSUP, "images of type %s (lpq takes uint8 pixels or "
                      "float32)", lpq_dtype_name(in->dtype));
  /* [N,H,W] grey images gain a channel axis so a model's NCHW input fits. */
  int64_t shape[LPQ_MAX_DIMS];
  int ndim = in->ndim;
  memcpy(shape, in->shape, sizeof shape);
  if (ndim == 3) {
    shape[3] = shape[2];
    shape[2] = shape[1];
    shape[1] = 1;
    ndim = 4;
  }
  lpq_error_t inner = {0};
  lpq_array_t *a = lpq_array_new(LPQ_DT_F32, ndim, shape, &inner);
  if (a == NULL)
    return lpq_errorf(err, inner.code, "images to float32: %s", inner.msg);
  float *dst = a->data;
  /* float32 and a division, not a reciprocal: the same bits numpy's
  ** (x.astype(float32) / 255 - mean) / std gives, so lpq and the reference scripts agree. */
  const float fmean = (float)mean, fstd = (float)std;
  if (in->dtype == LPQ_DT_U8) {
    const uint8_t *src = in->data;
    for (size_t i = 0; i < in->count; i++)
      dst[i] = ((float)src[i] / 255.0f - fmean) / fstd;
  } else {
    const float *src = in->data;
    for (size_t i = 0; i < in->count; i++)
      dst[i] = (src[i] - fmean) / fstd;
  }
  *out = a;
  return 0;
}

int lpq_load_inputs(const char *path, double mean, double std, lpq_array_t **out,
                    lpq_error_t *err) {
  lpq_array_t *raw = NULL;
  int rc = lpq_load_array(path, &raw, err);
  if (rc != 0)
    return rc;
  /* float32 data is already normalised (DESIGN section 6): mean and std apply to pixels only */
  if (raw->dtype == LPQ_DT_F32) {
    mean = 0.0;
    std = 1.0;
  }
  rc = lpq_images_to_f32(raw, mean, std, out, err);
  lpq_array_free(&raw);
  if (rc != 0)
    lpq_error_prefix(err, "%s: ", path);
  return rc;
}
