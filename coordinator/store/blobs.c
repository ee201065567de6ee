/*
** coordinator/store/blobs.c: content-addressed blobs. The bytes are files under the blob
** directory (DIR/ab/abcdef..., named by the SHA-256 of their content); the blobs table
** records hash, size, kind and time. A blob is written to a temporary file while it is hashed,
** fsync'ed and renamed into place before its row is committed, so a crash leaves at worst an
** unreferenced file, never a row whose file is partial.
*/
#include "coordinator/store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) -------------------------------------------------------------- **
** A local helper until the pool's common/hash.c (lpq_sha256_hex) is merged; then this section
** goes and the calls below use that. */

typedef struct sha256_t {
  uint32_t h[8];
  uint64_t length; /* bytes hashed */
  uint8_t block[64];
  size_t used;
} sha256_t;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(sha256_t *c, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
           g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                  sha256_k[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = cc;
    cc = b;
    b = a;
    a = t1 + t2;
  }
  c->h[0] += a;
  c->h[1] += b;
  c->h[2] += cc;
  c->h[3] += d;
  c->h[4] += e;
  c->h[5] += f;
  c->h[6] += g;
  c->h[7] += h;
}

static void sha256_init(sha256_t *c) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, h0, sizeof h0);
  c->length = 0;
  c->used = 0;
}

static void sha256_update(sha256_t *c, const void *data, size_t len) {
  const uint8_t *p = data;
  c->length += len;
  while (len > 0) {
    if (c->used == 0 && len >= 64) {
      sha256_block(c, p);
      p += 64;
      len -= 64;
      continue;
    }
    size_t take = 64 - c->used < len ? 64 - c->used : len;
    memcpy(c->block + c->used, p, take);
    c->used += take;
    p += take;
    len -= take;
    if (c->used == 64) {
      sha256_block(c, c->block);
      c->used = 0;
    }
  }
}

static void sha256_hex(sha256_t *c, char out[LPQ_STORE_HASH_HEX]) {
  uint64_t bits = c->length * 8;
  uint8_t pad[72] = {0x80};
  size_t pad_len = (c->used < 56 ? 56 : 120) - c->used;
  for (int i = 0; i < 8; i++)
    pad[pad_len + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(c, pad, pad_len + 8);
  for (int i = 0; i < 8; i++)
    snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

/* ---- blob files ------------------------------------------------------------------------ */

static int hash_valid(const char *hash) {
  if (hash == NULL || strlen(hash) != 64)
    return 0;
  for (int i = 0; i < 64; i++)
    if (!((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f')))
      return 0;
  return 1;
}

/* DIR/ab/abcd... (or DIR/ab when dir_only); malloc'd, NULL when memory runs out. */
static char *blob_file(const lpq_store_t *st, const char *hash, int dir_only) {
  size_t len = strlen(st->blob_dir) + 4 + 65;
  char *p = malloc(len);
  if (p != NULL && dir_only)
    snprintf(p, len, "%s/%.2s", st->blob_dir, hash);
  else if (p != NULL)
    snprintf(p, len, "%s/%.2s/%s", st->blob_dir, hash, hash);
  return p;
}

/* The blob's row: 0 with *found set; info filled when found and not NULL. */
static int blob_row(lpq_store_t *st, const char *hash, const char *op, int *found,
                    lpq_store_blob_t *info, lpq_error_t *err) {
  sqlite3_stmt *s;
  int ret = lpq__store_stmt(st, STMT_BLOB_GET, "SELECT size, kind, created FROM blobs WHERE hash = ?1",
                       "blobs", op, &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  *found = rc == SQLITE_ROW;
  if (rc == SQLITE_ROW && info != NULL) {
    memset(info, 0, sizeof *info);
    memcpy(info->hash, hash, 65);
    info->size = (size_t)sqlite3_column_int64(s, 0);
    lpq__store_column_text(s, 1, info->kind, sizeof info->kind);
    info->created = lpq__store_column_double(s, 2);
  } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    ret = lpq__store_fail(st, rc, "blobs", op, err);
  }
  sqlite3_reset(s);
  return ret;
}

/* A blob being written: a temporary file in the blob directory and the running hash. */
typedef struct blob_writer_t {
  char *tmp_path;
  int fd;
  sha256_t sha;
  size_t size;
} blob_writer_t;

static int writer_open(lpq_store_t *st, blob_writer_t *w, lpq_error_t *err) {
  memset(w, 0, sizeof *w);
  w->fd = -1;
  sha256_init(&w->sha);
  size_t len = strlen(st->blob_dir) + sizeof "/.tmp-XXXXXX";
  w->tmp_path = malloc(len);
  if (w->tmp_path == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: out of memory");
  snprintf(w->tmp_path, len, "%s/.tmp-XXXXXX", st->blob_dir);
  w->fd = mkstemp(w->tmp_path);
  if (w->fd < 0)
    return lpq_errorf(err, LPQ_EIO, "store: blobs: put: cannot create a file in %s: %s",
                      st->blob_dir, strerror(errno));
  return 0;
}

static int writer_write(blob_writer_t *w, const void *data, size_t len, lpq_error_t *err) {
  sha256_update(&w->sha, data, len);
  w->size += len;
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(w->fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return lpq_errorf(err, LPQ_EIO, "store: blobs: put: writing %s: %s", w->tmp_path,
                        strerror(errno));
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void writer_discard(blob_writer_t *w) {
  if (w->fd >= 0)
    close(w->fd);
  if (w->tmp_path != NULL)
    unlink(w->tmp_path);
  free(w->tmp_path);
  w->tmp_path = NULL;
  w->fd = -1;
}

/* Makes the written file the blob's and records its row; discards the writer. */
static int writer_finish(lpq_store_t *st, blob_writer_t *w, const char *kind,
                         char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  char hex[LPQ_STORE_HASH_HEX];
  sha256_hex(&w->sha, hex);
  int ret = 0;
  if (fsync(w->fd) != 0)
    ret = lpq_errorf(err, LPQ_EIO, "store: blobs: put: fsync %s: %s", w->tmp_path,
                     strerror(errno));
  char *dir = ret == 0 ? blob_file(st, hex, 1) : NULL;
  char *path = ret == 0 ? blob_file(st, hex, 0) : NULL;
  if (ret == 0 && (dir == NULL || path == NULL))
    ret = lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: out of memory");
  if (ret == 0 && mkdir(dir, 0700) != 0 && errno != EEXIST)
    ret = lpq_errorf(err, LPQ_EIO, "store: blobs: put: cannot create %s: %s", dir,
                     strerror(errno));
  if (ret == 0 && rename(w->tmp_path, path) != 0)
    ret = lpq_errorf(err, LPQ_EIO, "store: blobs: put: cannot rename %s to %s: %s", w->tmp_path,
                     path, strerror(errno));
  free(dir);
  free(path);
  writer_discard(w); /* after a rename the unlink finds nothing */
  if (ret != 0)
    return ret;
  sqlite3_stmt *s;
  ret = lpq__store_stmt(st, STMT_BLOB_INSERT,
                   "INSERT INTO blobs (hash, size, kind, created) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT (hash) DO NOTHING",
                   "blobs", "put", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, hex, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)w->size);
  sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 4, lpq__store_now());
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "blobs", "put", err);
  sqlite3_reset(s);
  if (ret == 0 && hash != NULL)
    memcpy(hash, hex, LPQ_STORE_HASH_HEX);
  return ret;
}

static int check_kind(const char *kind, lpq_error_t *err) {
  if (kind == NULL || kind[0] == '\0' || strlen(kind) >= LPQ_STORE_NAME_MAX)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: put: the kind must be 1..%d bytes",
                      LPQ_STORE_NAME_MAX - 1);
  return 0;
}

/* 1 when the blob's file exists with the recorded size. */
static int file_ok(const lpq_store_t *st, const char *hash, size_t size) {
  char *path = blob_file(st, hash, 0);
  struct stat sb;
  int ok = path != NULL && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
           (uint64_t)sb.st_size == (uint64_t)size;
  free(path);
  return ok;
}

int lpq_store_blob_put(lpq_store_t *st, const char *kind, const void *data, size_t size,
                       char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  if (st == NULL || (data == NULL && size > 0))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: put: missing store or data");
  int ret = check_kind(kind, err);
  if (ret != 0)
    return ret;
  /* Hash first: a blob already stored costs no write. */
  sha256_t sha;
  char hex[LPQ_STORE_HASH_HEX];
  sha256_init(&sha);
  sha256_update(&sha, data, size);
  sha256_hex(&sha, hex);
  int found = 0;
  lpq_store_blob_t info;
  if ((ret = blob_row(st, hex, "put", &found, &info, err)) != 0)
    return ret;
  if (found && info.size == size && file_ok(st, hex, size)) {
    if (hash != NULL)
      memcpy(hash, hex, LPQ_STORE_HASH_HEX);
    return 0;
  }
  blob_writer_t w;
  ret = writer_open(st, &w, err);
  if (ret == 0)
    ret = writer_write(&w, data, size, err);
  if (ret != 0) {
    writer_discard(&w);
    return ret;
  }
  return writer_finish(st, &w, kind, hash, err);
}

int lpq_store_blob_put_file(lpq_store_t *st, const char *kind, const char *path,
                            char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  if (st == NULL || path == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: put: missing store or path");
  int ret = check_kind(kind, err);
  if (ret != 0)
    return ret;
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return lpq_errorf(err, errno == ENOENT ? LPQ_ENOTFOUND : LPQ_EIO,
                      "store: blobs: put: cannot open %s: %s", path, strerror(errno));
  blob_writer_t w;
  ret = writer_open(st, &w, err);
  char buf[1 << 16];
  while (ret == 0) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      ret = lpq_errorf(err, LPQ_EIO, "store: blobs: put: reading %s: %s", path, strerror(errno));
    if (n <= 0)
      break;
    ret = writer_write(&w, buf, (size_t)n, err);
  }
  close(in);
  if (ret != 0) {
    writer_discard(&w);
    return ret;
  }
  return writer_finish(st, &w, kind, hash, err);
}

int lpq_store_blob_has(lpq_store_t *st, const char *hash, int *found, lpq_store_blob_t *info,
                       lpq_error_t *err) {
  if (st == NULL || found == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: has: missing store or output");
  *found = 0;
  if (!hash_valid(hash))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: has: \"%s\" is not 64 lowercase hex "
                      "digits", hash != NULL ? hash : "(null)");
  lpq_store_blob_t row;
  int ret = blob_row(st, hash, "has", found, &row, err);
  if (ret == 0 && *found)
    *found = file_ok(st, hash, row.size); /* a vanished file must be uploaded again */
  if (ret == 0 && *found && info != NULL)
    *info = row;
  return ret;
}

int lpq_store_blob_path(lpq_store_t *st, const char *hash, char **path, lpq_error_t *err) {
  if (st == NULL || path == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: path: missing store or output");
  *path = NULL;
  if (!hash_valid(hash))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: path: \"%s\" is not 64 lowercase hex "
                      "digits", hash != NULL ? hash : "(null)");
  int found = 0;
  lpq_store_blob_t row;
  int ret = blob_row(st, hash, "path", &found, &row, err);
  if (ret != 0)
    return ret;
  if (!found)
    return lpq_errorf(err, LPQ_ENOTFOUND, "store: blobs: path: no blob %s", hash);
  if (!file_ok(st, hash, row.size))
    return lpq_errorf(err, LPQ_EIO, "store: blobs: path: the file of blob %s is missing or not "
                      "%zu bytes", hash, row.size);
  *path = blob_file(st, hash, 0);
  return *path != NULL ? 0 : lpq_errorf(err, LPQ_ENOMEM, "store: blobs: path: out of memory");
}

int lpq_store_blob_read(lpq_store_t *st, const char *hash, void **data, size_t *size,
                        lpq_error_t *err) {
  if (data == NULL || size == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: read: missing output");
  *data = NULL;
  *size = 0;
  char *path = NULL;
  int ret = lpq_store_blob_path(st, hash, &path, err);
  if (ret != 0)
    return ret;
  struct stat sb;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &sb) != 0) {
    ret = lpq_errorf(err, LPQ_EIO, "store: blobs: read: %s: %s", path, strerror(errno));
  } else {
    size_t len = (size_t)sb.st_size;
    char *buf = malloc(len > 0 ? len : 1);
    size_t got = 0;
    if (buf == NULL)
      ret = lpq_errorf(err, LPQ_ENOMEM, "store: blobs: read: %zu bytes for blob %s", len, hash);
    while (ret == 0 && got < len) {
      ssize_t n = read(fd, buf + got, len - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        ret = lpq_errorf(err, LPQ_EIO, "store: blobs: read: %s: %s", path,
                         n < 0 ? strerror(errno) : "shorter than recorded");
      else
        got += (size_t)n;
    }
    if (ret == 0) {
      *data = buf;
      *size = len;
    } else {
      free(buf);
    }
  }
  if (fd >= 0)
    close(fd);
  free(path);
  return ret;
}
