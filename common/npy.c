/* common/npy.c: NumPy .npy files (format versions 1.0, 2.0 and 3.0), read and written. */
#include "common/common_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A header longer than this is hostile: numpy's own reader refuses far shorter ones. */
#define NPY_HEADER_MAX ((size_t)1 << 20)
/* Headers are padded so the data starts on this boundary (numpy >= 1.14 uses 64). */
#define NPY_ALIGN 64

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* What lpq reads: the descr strings of the supported types. Multi-byte types must be
** little-endian ('<'); single bytes have no order ('|', and '<' is accepted too). */
static const struct {
  const char *descr;
  lpq_dtype_t dtype;
} npy_types[] = {
    {"<f4", LPQ_DT_F32}, {"<f8", LPQ_DT_F64}, {"<i8", LPQ_DT_I64}, {"<i4", LPQ_DT_I32},
    {"|u1", LPQ_DT_U8},  {"<u1", LPQ_DT_U8},  {"|i1", LPQ_DT_I8},  {"<i1", LPQ_DT_I8},
    {"|b1", LPQ_DT_BOOL}, {"<b1", LPQ_DT_BOOL},
};
#define NPY_NTYPES (sizeof npy_types / sizeof npy_types[0])

int lpq__host_is_little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

void lpq__bswap(void *data, size_t count, size_t elem_size) {
  unsigned char *p = data;
  if (elem_size < 2)
    return;
  for (size_t i = 0; i < count; i++, p += elem_size)
    for (size_t a = 0, b = elem_size - 1; a < b; a++, b--) {
      unsigned char t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

/* ---- the header dictionary --------------------------------------------------------------- */

/* The parsed header: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
typedef struct npy_header_t {
  char descr[16];
  int fortran_order;
  int ndim;
  int64_t shape[LPQ_MAX_DIMS];
  unsigned seen; /* bit per key: 1 descr, 2 fortran_order, 4 shape */
} npy_header_t;

typedef struct cursor_t {
  const char *p, *end;
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int expect(cursor_t *c, char ch) {
  skip_space(c);
  if (c->p >= c->end || *c->p != ch)
    return 0;
  c->p++;
  return 1;
}

/* A Python string literal in quotes ' or ", without escapes (npy headers never have any). */
static int parse_string(cursor_t *c, char *out, size_t len) {
  skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return 0;
  char quote = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != quote) {
    if (*c->p == '\\' || n + 1 >= len)
      return 0;
    out[n++] = *c->p++;
  }
  if (c->p >= c->end)
    return 0;
  c->p++;
  out[n] = '\0';
  return 1;
}

static int parse_word(cursor_t *c, const char *word) {
  skip_space(c);
  size_t n = strlen(word);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

/* (d0, d1, ...) with a trailing comma allowed, () for a scalar; non-negative decimal ints. */
static int parse_shape(cursor_t *c, npy_header_t *h, const char *path, lpq_error_t *err) {
  if (!expect(c, '('))
    return lpq_errorf(err, LPQ_EFORMAT, "%s: header: 'shape' is not a tuple", path);
  h->ndim = 0;
  for (;;) {
    if (expect(c, ')'))
      return 0;
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: 'shape' holds something other than "
                        "non-negative integers", path);
    if (h->ndim == LPQ_MAX_DIMS)
      return lpq_errorf(err, LPQ_EUNSUP, "%s: header: more than %d dimensions", path,
                        LPQ_MAX_DIMS);
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      if (v > (INT64_MAX - 9) / 10)
        return lpq_errorf(err, LPQ_ERANGE, "%s: header: dimension %d is absurdly large", path,
                          h->ndim);
      v = v * 10 + (*c->p++ - '0');
    }
    if (c->p < c->end && *c->p == 'L') /* Python 2 long suffix */
      c->p++;
    h->shape[h->ndim++] = v;
    if (expect(c, ')'))
      return 0;
    if (!expect(c, ','))
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: bad syntax in 'shape'", path);
  }
}

static int parse_header(const char *text, size_t len, npy_header_t *h, const char *path,
                        lpq_error_t *err) {
  cursor_t c = {text, text + len};
  memset(h, 0, sizeof *h);
  if (!expect(&c, '{'))
    return lpq_errorf(err, LPQ_EFORMAT, "%s: header is not a dictionary (no '{')", path);
  for (;;) {
    if (expect(&c, '}'))
      break;
    char key[32];
    if (!parse_string(&c, key, sizeof key))
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: expected a quoted key", path);
    if (!expect(&c, ':'))
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: no ':' after key '%s'", path, key);
    unsigned bit;
    if (strcmp(key, "descr") == 0) {
      bit = 1;
      if (!parse_string(&c, h->descr, sizeof h->descr))
        return lpq_errorf(err, LPQ_EUNSUP, "%s: header: 'descr' is not a simple type string "
                          "(structured arrays are not supported)", path);
    } else if (strcmp(key, "fortran_order") == 0) {
      bit = 2;
      if (parse_word(&c, "False"))
        h->fortran_order = 0;
      else if (parse_word(&c, "True"))
        h->fortran_order = 1;
      else
        return lpq_errorf(err, LPQ_EFORMAT, "%s: header: 'fortran_order' is not True or False",
                          path);
    } else if (strcmp(key, "shape") == 0) {
      bit = 4;
      int rc = parse_shape(&c, h, path, err);
      if (rc != 0)
        return rc;
    } else {
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: unknown key '%s'", path, key);
    }
    if (h->seen & bit)
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: key '%s' appears twice", path, key);
    h->seen |= bit;
    if (expect(&c, '}'))
      break;
    if (!expect(&c, ','))
      return lpq_errorf(err, LPQ_EFORMAT, "%s: header: expected ',' or '}' after '%s'", path,
                        key);
  }
  skip_space(&c);
  if (c.p != c.end)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: header: text after the closing '}'", path);
  if (h->seen != 7)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: header: missing key '%s'", path,
                      !(h->seen & 1) ? "descr" : !(h->seen & 2) ? "fortran_order" : "shape");
  return 0;
}

static int descr_to_dtype(const char *descr, lpq_dtype_t *out, const char *path,
                          lpq_error_t *err) {
  for (size_t i = 0; i < NPY_NTYPES; i++)
    if (strcmp(descr, npy_types[i].descr) == 0) {
      *out = npy_types[i].dtype;
      return 0;
    }
  if (descr[0] == '>')
    return lpq_errorf(err, LPQ_EUNSUP, "%s: dtype '%s' is big-endian (only little-endian "
                      "files are read)", path, descr);
  return lpq_errorf(err, LPQ_EUNSUP, "%s: dtype '%s' is not supported (float32, float64, "
                    "int64, int32, uint8, int8, bool)", path, descr);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Reads the preamble and header of an open .npy file, leaves f at the data; sets *data_offset. */
static int read_header(FILE *f, const char *path, npy_header_t *h, size_t *data_offset,
                       lpq_error_t *err) {
  unsigned char pre[12];
  size_t got = fread(pre, 1, 10, f);
  if (got < 8 || memcmp(pre, npy_magic, sizeof npy_magic) != 0)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: bad magic (not a .npy file)", path);
  int major = pre[6], minor = pre[7];
  size_t header_len, prefix;
  if (major == 1) {
    if (got < 10)
      return lpq_errorf(err, LPQ_EFORMAT, "%s: truncated in the preamble", path);
    header_len = (size_t)pre[8] | (size_t)pre[9] << 8;
    prefix = 10;
  } else if (major == 2 || major == 3) {
    if (got < 10 || fread(pre + 10, 1, 2, f) != 2)
      return lpq_errorf(err, LPQ_EFORMAT, "%s: truncated in the preamble", path);
    header_len = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
                 (size_t)pre[11] << 24;
    prefix = 12;
  } else {
    return lpq_errorf(err, LPQ_EUNSUP, "%s: format version %d.%d (lpq reads 1.0, 2.0, 3.0)",
                      path, major, minor);
  }
  if (header_len == 0 || header_len > NPY_HEADER_MAX)
    return lpq_errorf(err, LPQ_EFORMAT, "%s: header length %zu is out of range 1..%zu", path,
                      header_len, NPY_HEADER_MAX);
  char *text = malloc(header_len);
  if (text == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory for the header", path);
  size_t n = fread(text, 1, header_len, f);
  int rc = 0;
  if (n != header_len)
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: truncated in the header at byte %zu of %zu", path,
                    prefix + n, prefix + header_len);
  else if (memchr(text, '\0', header_len) != NULL)
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: header contains a NUL byte", path);
  else
    rc = parse_header(text, header_len, h, path, err);
  free(text);
  *data_offset = prefix + header_len;
  return rc;
}

int lpq_load_npy(const char *path, lpq_array_t **out, lpq_error_t *err) {
  if (path == NULL || out == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_load_npy: NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  npy_header_t h;
  size_t offset = 0, count = 0;
  lpq_dtype_t dtype = LPQ_DT_F32;
  int rc = 0;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = lpq_errorf(err, LPQ_EIO, "%s: not a regular file", path);
    goto done;
  }
  if ((rc = read_header(f, path, &h, &offset, err)) != 0 ||
      (rc = descr_to_dtype(h.descr, &dtype, path, err)) != 0)
    goto done;
  if (h.fortran_order) {
    rc = lpq_errorf(err, LPQ_EUNSUP, "%s: fortran_order is True (only C order is read; "
                    "save with np.ascontiguousarray)", path);
    goto done;
  }
  /* The data must be exactly the bytes the shape needs: checked before allocating. */
  size_t file_size = (size_t)st.st_size, esize = lpq_dtype_size(dtype);
  size_t avail = file_size > offset ? file_size - offset : 0;
  char shape[160];
  lpq_shape_str(h.ndim, h.shape, shape, sizeof shape);
  if (lpq_shape_count(h.ndim, h.shape, esize, SIZE_MAX, &count, NULL) != 0) {
    rc = lpq_errorf(err, LPQ_ERANGE, "%s: shape %s of %s overflows (the header lies)", path,
                    shape, h.descr);
    goto done;
  }
  if (count * esize > avail) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: truncated: shape %s of %s needs %zu data bytes "
                    "from byte %zu, but the file ends at byte %zu", path, shape, h.descr,
                    count * esize, offset, file_size);
    goto done;
  }
  if (count * esize < avail) {
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: %zu bytes after the data that shape %s of %s needs "
                    "(the header lies or the file is damaged)", path, avail - count * esize,
                    shape, h.descr);
    goto done;
  }
  lpq_error_t inner = {0};
  lpq_array_t *a = lpq_array_new(dtype, h.ndim, h.shape, &inner);
  if (a == NULL) {
    rc = lpq_errorf(err, inner.code, "%s: %s", path, inner.msg);
    goto done;
  }
  if (count > 0 && fread(a->data, esize, count, f) != count) {
    lpq_array_free(&a);
    rc = lpq_errorf(err, LPQ_EIO, "%s: read error in the data", path);
    goto done;
  }
  if (!lpq__host_is_little_endian())
    lpq__bswap(a->data, count, esize);
  *out = a;
done:
  fclose(f);
  return rc;
}

/* ---- writing ------------------------------------------------------------------------------- */

int lpq_save_npy(const char *path, const lpq_array_t *a, lpq_error_t *err) {
  if (path == NULL || a == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "lpq_save_npy: NULL argument");
  const char *descr = NULL;
  for (size_t i = 0; i < NPY_NTYPES && descr == NULL; i++)
    if (npy_types[i].dtype == a->dtype)
      descr = npy_types[i].descr;
  if (descr == NULL || a->ndim < 0 || a->ndim > LPQ_MAX_DIMS)
    return lpq_errorf(err, LPQ_EINVAL, "%s: cannot save an array of type %d with %d dimensions",
                      path, (int)a->dtype, a->ndim);
  char dict[64 + LPQ_MAX_DIMS * 24];
  int used = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                      descr);
  for (int i = 0; i < a->ndim; i++)
    used += snprintf(dict + used, sizeof dict - (size_t)used, "%lld%s", (long long)a->shape[i],
                     a->ndim == 1 || i + 1 < a->ndim ? ", " : "");
  used += snprintf(dict + used, sizeof dict - (size_t)used, "), }");
  /* Version 1.0 (2-byte length) always suffices for LPQ_MAX_DIMS dimensions. Pad with spaces
  ** and end with '\n' so the data starts on a 64-byte boundary, as numpy writes it. */
  size_t total = 10 + (size_t)used + 1;
  total = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  size_t header_len = total - 10;
  unsigned char pre[10];
  memcpy(pre, npy_magic, sizeof npy_magic);
  pre[6] = 1;
  pre[7] = 0;
  pre[8] = (unsigned char)(header_len & 0xff);
  pre[9] = (unsigned char)(header_len >> 8);
  char header[sizeof dict + NPY_ALIGN];
  memset(header, ' ', header_len);
  memcpy(header, dict, (size_t)used);
  header[header_len - 1] = '\n';

  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  size_t esize = lpq_dtype_size(a->dtype);
  int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre &&
           fwrite(header, 1, header_len, f) == header_len;
  if (ok && a->count > 0) {
    if (lpq__host_is_little_endian()) {
      ok = fwrite(a->data, esize, a->count, f) == a->count;
    } else {
      /* Swap one element at a time: the caller's array stays untouched. */
      const unsigned char *p = a->data;
      for (size_t i = 0; ok && i < a->count; i++, p += esize) {
        unsigned char e[8];
        memcpy(e, p, esize);
        lpq__bswap(e, 1, esize);
        ok = fwrite(e, esize, 1, f) == 1;
      }
    }
  }
  if (fclose(f) != 0)
    ok = 0;
  if (!ok)
    return lpq_errorf(err, LPQ_EIO, "%s: write failed: %s", path, strerror(errno));
  return 0;
}
