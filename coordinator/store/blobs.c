/*
** coordinator/store/blobs.c: content-addressed blobs. The bytes are files under the blob
** directory (DIR/ab/abcdef..., named by the SHA-256 of their content); the blobs table
** records hash, size, kind and time. A blob is written to a temporary file while it is hashed,
** fsync'ed and renamed into place before its row is committed, so a crash leaves at worst an
** unreferenced file, never a row whose file is partial. Writing a blob's file needs no database
** (lpq_store_blob_write*), so the daemon does it on libuv's work queue and records the row on
** its loop (lpq_store_blob_record); a file that no row claims is removed again
** (lpq_store_blob_forget), and blobs no job names are collected after a grace period
** (lpq_store_blob_collect).
*/
#include "coordinator/store/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
static char *dir_file(const char *blob_dir, const char *hash, int dir_only) {
  size_t len = strlen(blob_dir) + 4 + 65;
  char *p = malloc(len);
  if (p != NULL && dir_only)
    snprintf(p, len, "%s/%.2s", blob_dir, hash);
  else if (p != NULL)
    snprintf(p, len, "%s/%.2s/%s", blob_dir, hash, hash);
  return p;
}

static char *blob_file(const lpq_store_t *st, const char *hash, int dir_only) {
  return dir_file(st->blob_dir, hash, dir_only);
}

char *lpq_store_blob_file(const char *blob_dir, const char *hash) {
  return blob_dir != NULL && hash_valid(hash) ? dir_file(blob_dir, hash, 0) : NULL;
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

static int check_kind(const char *kind, lpq_error_t *err);

/* A blob being written: a temporary file (mode 0600) in the blob directory and the running
** hash. */
typedef struct blob_writer_t {
  const char *blob_dir;
  char *tmp_path;
  int fd;
  lpq_sha256_t *sha;
  uint64_t size;
} blob_writer_t;

static int writer_open(const char *blob_dir, blob_writer_t *w, lpq_error_t *err) {
  memset(w, 0, sizeof *w);
  w->blob_dir = blob_dir;
  w->fd = -1;
  size_t len = strlen(blob_dir) + sizeof "/.tmp-XXXXXX";
  w->tmp_path = malloc(len);
  w->sha = lpq_sha256_new();
  if (w->tmp_path == NULL || w->sha == NULL)
    return lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: out of memory");
  snprintf(w->tmp_path, len, "%s/.tmp-XXXXXX", blob_dir);
  w->fd = mkstemp(w->tmp_path);
  if (w->fd < 0)
    return lpq_errorf(err, LPQ_EIO, "store: blobs: put: cannot create a file in %s: %s",
                      blob_dir, strerror(errno));
  return 0;
}

static int writer_write(blob_writer_t *w, const void *data, size_t len, lpq_error_t *err) {
  lpq_sha256_update(w->sha, data, len);
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
  lpq_sha256_free(&w->sha);
  w->tmp_path = NULL;
  w->fd = -1;
}

/* Makes the written file the blob's (fsync'ed, renamed under its hash); discards the writer. */
static int writer_finish(blob_writer_t *w, char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  char hex[LPQ_STORE_HASH_HEX];
  int ret = lpq_sha256_final(w->sha, hex) != 0
                ? lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: hashing failed") : 0;
  if (ret == 0 && fsync(w->fd) != 0)
    ret = lpq_errorf(err, LPQ_EIO, "store: blobs: put: fsync %s: %s", w->tmp_path,
                     strerror(errno));
  char *dir = ret == 0 ? dir_file(w->blob_dir, hex, 1) : NULL;
  char *path = ret == 0 ? dir_file(w->blob_dir, hex, 0) : NULL;
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
  if (ret == 0)
    memcpy(hash, hex, LPQ_STORE_HASH_HEX);
  return ret;
}

int lpq_store_blob_write(const char *blob_dir, const void *data, size_t size,
                         char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  if (blob_dir == NULL || hash == NULL || (data == NULL && size > 0))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: write: missing directory, data or output");
  blob_writer_t w;
  int ret = writer_open(blob_dir, &w, err);
  if (ret == 0)
    ret = writer_write(&w, data, size, err);
  if (ret != 0) {
    writer_discard(&w);
    return ret;
  }
  return writer_finish(&w, hash, err);
}

int lpq_store_blob_write_fd(const char *blob_dir, int fd, uint64_t max_bytes, const char *name,
                            char hash[LPQ_STORE_HASH_HEX], uint64_t *size, lpq_error_t *err) {
  if (blob_dir == NULL || fd < 0 || hash == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: write: missing directory, file or output");
  name = name ? name : "the file";
  blob_writer_t w;
  int ret = writer_open(blob_dir, &w, err);
  size_t cap = 1 << 16;
  char *buf = ret == 0 ? malloc(cap) : NULL;
  if (ret == 0 && buf == NULL)
    ret = lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: out of memory");
  while (ret == 0) {
    ssize_t n = read(fd, buf, cap);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      ret = lpq_errorf(err, LPQ_EIO, "%s: reading: %s", name, strerror(errno));
    if (n <= 0)
      break;
    if (w.size + (uint64_t)n > max_bytes) /* the file grew past the limit while being read */
      ret = lpq_errorf(err, LPQ_ERANGE, "%s: more than %llu bytes (the coordinator's blob "
                       "limit, --max-blob-mb)", name, (unsigned long long)max_bytes);
    else
      ret = writer_write(&w, buf, (size_t)n, err);
  }
  free(buf);
  uint64_t total = w.size;
  if (ret != 0) {
    writer_discard(&w);
    return ret;
  }
  ret = writer_finish(&w, hash, err);
  if (ret == 0 && size != NULL)
    *size = total;
  return ret;
}

int lpq_store_blob_record(lpq_store_t *st, const char *kind, const char *hash, uint64_t size,
                          lpq_error_t *err) {
  if (st == NULL || !hash_valid(hash))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: record: missing store or hash");
  int ret = check_kind(kind, err);
  sqlite3_stmt *s;
  if (ret == 0)
    ret = lpq__store_stmt(st, STMT_BLOB_INSERT,
                          "INSERT INTO blobs (hash, size, kind, created) VALUES (?1, ?2, ?3, ?4) "
                          "ON CONFLICT (hash) DO NOTHING",
                          "blobs", "put", &s, err);
  if (ret != 0)
    return ret;
  sqlite3_bind_text(s, 1, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, (sqlite3_int64)size);
  sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 4, lpq__store_now());
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "blobs", "put", err);
  sqlite3_reset(s);
  return ret;
}

int lpq_store_blob_forget(lpq_store_t *st, const char *hash, lpq_error_t *err) {
  if (st == NULL || !hash_valid(hash))
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: forget: missing store or hash");
  int found = 0;
  int ret = blob_row(st, hash, "forget", &found, NULL, err);
  if (ret != 0 || found)
    return ret;
  char *path = blob_file(st, hash, 0);
  if (path != NULL)
    unlink(path);
  free(path);
  return 0;
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
  char hex[LPQ_STORE_HASH_HEX];
  if (lpq_sha256_hex(data, size, hex) != 0)
    return lpq_errorf(err, LPQ_ENOMEM, "store: blobs: put: hashing failed");
  int found = 0;
  lpq_store_blob_t info;
  if ((ret = blob_row(st, hex, "put", &found, &info, err)) != 0)
    return ret;
  if (!(found && info.size == size && file_ok(st, hex, size))) {
    if ((ret = lpq_store_blob_write(st->blob_dir, data, size, hex, err)) != 0 ||
        (ret = lpq_store_blob_record(st, kind, hex, size, err)) != 0)
      return ret;
  }
  if (hash != NULL)
    memcpy(hash, hex, LPQ_STORE_HASH_HEX);
  return 0;
}

int lpq_store_blob_open_regular(const char *path, uint64_t max_bytes, int *fd, uint64_t *size,
                                lpq_error_t *err) {
  *fd = -1;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular file is read. */
  int in = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat sb;
  if (in < 0)
    return lpq_errorf(err, errno == ENOENT ? LPQ_ENOTFOUND : LPQ_EIO, "%s: cannot open: %s",
                      path, strerror(errno));
  int ret = 0;
  if (fstat(in, &sb) != 0)
    ret = lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    ret = lpq_errorf(err, LPQ_EINVAL, "%s is not a regular file (a device, FIFO, socket or "
                     "folder); only regular files are read", path);
  else if ((uint64_t)sb.st_size > max_bytes)
    ret = lpq_errorf(err, LPQ_ERANGE, "%s: %llu bytes is over the coordinator's blob limit of "
                     "%llu bytes (--max-blob-mb)", path, (unsigned long long)sb.st_size,
                     (unsigned long long)max_bytes);
  else if (fcntl(in, F_SETFL, fcntl(in, F_GETFL) & ~O_NONBLOCK) != 0)
    ret = lpq_errorf(err, LPQ_EIO, "%s: %s", path, strerror(errno));
  if (ret != 0) {
    close(in);
    return ret;
  }
  *fd = in;
  if (size != NULL)
    *size = (uint64_t)sb.st_size;
  return 0;
}

int lpq_store_blob_put_file(lpq_store_t *st, const char *kind, const char *path,
                            char hash[LPQ_STORE_HASH_HEX], lpq_error_t *err) {
  if (st == NULL || path == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: put: missing store or path");
  int ret = check_kind(kind, err);
  if (ret != 0)
    return ret;
  int in = -1;
  char hex[LPQ_STORE_HASH_HEX];
  uint64_t size = 0;
  if ((ret = lpq_store_blob_open_regular(path, UINT64_MAX, &in, NULL, err)) != 0)
    return ret;
  ret = lpq_store_blob_write_fd(st->blob_dir, in, UINT64_MAX, path, hex, &size, err);
  close(in);
  if (ret == 0)
    ret = lpq_store_blob_record(st, kind, hex, size, err);
  if (ret == 0 && hash != NULL)
    memcpy(hash, hex, LPQ_STORE_HASH_HEX);
  return ret;
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

/* Blobs no job's settings name (model, data, labels, val_data, val_labels), recorded before
** `before`: uploads (blob.put) that no submit used within the grace period. */
#define COLLECT_SQL                                                                          \
  "SELECT hash FROM blobs WHERE created < ?1 AND hash NOT IN (SELECT j.value FROM jobs, "    \
  "json_each(jobs.settings) AS j WHERE j.key IN ('model', 'data', 'labels', 'val_data', "    \
  "'val_labels'))"

int lpq_store_blob_collect(lpq_store_t *st, double older_than_s, int (*keep)(void *, const char *),
                           void *ctx, size_t *removed, lpq_error_t *err) {
  if (st == NULL || removed == NULL)
    return lpq_errorf(err, LPQ_EINVAL, "store: blobs: collect: missing argument");
  *removed = 0;
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(st->db, COLLECT_SQL, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return lpq__store_fail(st, rc, "blobs", "collect", err);
  sqlite3_bind_double(s, 1, lpq__store_now() - older_than_s);
  char (*hashes)[LPQ_STORE_HASH_HEX] = NULL;
  size_t n = 0, cap = 0;
  int ret = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *h = (const char *)sqlite3_column_text(s, 0);
    if (!hash_valid(h) || (keep && keep(ctx, h)))
      continue;
    if (n == cap) {
      size_t c = cap ? 2 * cap : 16;
      char (*more)[LPQ_STORE_HASH_HEX] = realloc(hashes, c * sizeof *hashes);
      if (!more) {
        ret = lpq_errorf(err, LPQ_ENOMEM, "store: blobs: collect: out of memory");
        break;
      }
      hashes = more;
      cap = c;
    }
    memcpy(hashes[n++], h, LPQ_STORE_HASH_HEX);
  }
  if (ret == 0 && rc != SQLITE_DONE)
    ret = lpq__store_fail(st, rc, "blobs", "collect", err);
  sqlite3_finalize(s);
  s = NULL;
  if (ret == 0 && n > 0 &&
      (rc = sqlite3_prepare_v2(st->db, "DELETE FROM blobs WHERE hash = ?1", -1, &s, NULL)) !=
          SQLITE_OK)
    ret = lpq__store_fail(st, rc, "blobs", "collect", err);
  for (size_t i = 0; ret == 0 && i < n; i++) {
    sqlite3_bind_text(s, 1, hashes[i], -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
      ret = lpq__store_fail(st, rc, "blobs", "collect", err);
      break;
    }
    char *path = blob_file(st, hashes[i], 0); /* the row first: a file without one is harmless */
    if (path != NULL)
      unlink(path);
    free(path);
    (*removed)++;
  }
  sqlite3_finalize(s);
  free(hashes);
  return ret;
}
