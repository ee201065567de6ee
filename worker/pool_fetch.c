/*
** worker/pool_fetch.c: the blob cache (cache_dir/HASH, kept across runs) and fetching what is
** missing from the coordinator by hash, chunk by chunk. A fetch writes to a temporary file,
** hashes the bytes as they arrive, and renames the file into place only when the SHA-256
** matches: the cache never holds a wrong or partial blob under a hash name.
*/
#include "worker/worker_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *dir)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
    return -1;
  for (char *s = buf + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
      *s = '/';
    }
  return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int lpq__pw_cache_init(pw_t *p, lpq_error_t *err)
{
  const char *dir = p->o.cache_dir ? p->o.cache_dir : "./var/worker-cache";
  if (snprintf(p->cache_dir, sizeof p->cache_dir, "%s", dir) >= (int)sizeof p->cache_dir)
    return lpq_errorf(err, LPQ_EINVAL, "lpq-worker: cache directory name is too long");
  if (mkdir_p(p->cache_dir) != 0)
    return lpq_errorf(err, LPQ_EIO, "lpq-worker: cannot create cache directory %s: %s",
                      p->cache_dir, strerror(errno));
  return 0;
}

int lpq__pw_cache_has(const pw_t *p, const char *hash, char *path, size_t cap)
{
  if (!lpq_hash_valid(hash))
    return 0;
  snprintf(path, cap, "%s/%s", p->cache_dir, hash);
  return access(path, R_OK) == 0;
}

static void request_chunk(pw_t *p)
{
  lpq_blob_get_t g = {.offset = p->fetch.offset, .max_len = (uint32_t)LPQ_WIRE_MAX_CHUNK};
  memcpy(g.hash, p->fetch.hash, sizeof g.hash);
  lpq_error_t err;
  if (lpq_wire_encode_blob_get(&p->out, &g, &err) == 0)
    lpq__pw_send_out(p);
}

void lpq__pw_fetch_abort(pw_t *p)
{
  if (!p->fetch.active)
    return;
  close(p->fetch.fd);
  unlink(p->fetch.tmp_path);
  lpq_sha256_free(&p->fetch.sha);
  p->fetch.active = 0;
}

void lpq__pw_fetch_start(pw_t *p, const char *hash)
{
  pw_fetch_t *f = &p->fetch;
  memset(f, 0, sizeof *f);
  memcpy(f->hash, hash, sizeof f->hash);
  snprintf(f->tmp_path, sizeof f->tmp_path, "%s/.%s.%ld.tmp", p->cache_dir, hash,
           (long)getpid());
  f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  f->sha = lpq_sha256_new();
  if (f->fd < 0 || f->sha == NULL) {
    char why[256];
    snprintf(why, sizeof why, "blob %.64s: cannot write the cache: %s", hash,
             f->fd < 0 ? strerror(errno) : "out of memory");
    if (f->fd >= 0)
      close(f->fd);
    lpq_sha256_free(&f->sha);
    lpq__pw_pending_fail(p, hash, LPQ_EIO, why);
    return;
  }
  f->active = 1;
  f->started_ms = lpq__pw_now_ms();
  f->total = UINT64_MAX;
  lpq__pw_log(p, 3, "fetching blob %s", hash);
  request_chunk(p);
}

static void fetch_fail(pw_t *p, int status, const char *why)
{
  char hash[65];
  memcpy(hash, p->fetch.hash, sizeof hash);
  lpq__pw_fetch_abort(p);
  lpq__pw_log(p, 1, "%s", why);
  lpq__pw_pending_fail(p, hash, status, why);
}

void lpq__pw_fetch_chunk(pw_t *p, const lpq_blob_chunk_t *c)
{
  pw_fetch_t *f = &p->fetch;
  char why[320];
  if (!f->active || strcmp(c->hash, f->hash) != 0 || (c->status == 0 && c->offset != f->offset)) {
    lpq__pw_log(p, 1, "unexpected BLOB chunk of %.16s at %llu; ignored", c->hash,
           (unsigned long long)c->offset);
    return;
  }
  if (c->status != 0) {
    snprintf(why, sizeof why, "%.300s", c->error[0] ? c->error : lpq_strerror(c->status));
    fetch_fail(p, c->status, why);
    return;
  }
  if (f->total == UINT64_MAX)
    f->total = c->total_size;
  if (c->total_size != f->total || (c->len == 0 && f->offset < f->total)) {
    snprintf(why, sizeof why, "blob %.64s: inconsistent chunk (size %llu, was %llu)", c->hash,
             (unsigned long long)c->total_size, (unsigned long long)f->total);
    fetch_fail(p, LPQ_EFORMAT, why);
    return;
  }
  for (size_t done = 0; done < c->len;) {
    ssize_t w = write(f->fd, c->data + done, c->len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      snprintf(why, sizeof why, "blob %.64s: writing the cache: %s", c->hash, strerror(errno));
      fetch_fail(p, LPQ_EIO, why);
      return;
    }
    done += (size_t)w;
  }
  lpq_sha256_update(f->sha, c->data, c->len);
  f->offset += c->len;
  if (f->offset < f->total) {
    request_chunk(p);
    return;
  }
  char got[65], path[PATH_MAX];
  lpq_sha256_final(f->sha, got);
  if (strcmp(got, f->hash) != 0) {
    snprintf(why, sizeof why, "blob %.64s: the %llu bytes received hash to %.64s; discarded",
             f->hash, (unsigned long long)f->total, got);
    fetch_fail(p, LPQ_EFORMAT, why);
    return;
  }
  close(f->fd);
  f->fd = -1;
  snprintf(path, sizeof path, "%s/%s", p->cache_dir, f->hash);
  if (rename(f->tmp_path, path) != 0) {
    snprintf(why, sizeof why, "blob %.64s: cannot move it into the cache: %s", f->hash,
             strerror(errno));
    unlink(f->tmp_path);
    lpq_sha256_free(&f->sha);
    f->active = 0;
    lpq__pw_pending_fail(p, got, LPQ_EIO, why);
    return;
  }
  lpq_sha256_free(&f->sha);
  f->active = 0;
  lpq__pw_log(p, 2, "blob %s: %llu bytes fetched and verified in %llu ms", f->hash,
         (unsigned long long)f->total, (unsigned long long)(lpq__pw_now_ms() - f->started_ms));
  lpq__pw_pending_advance(p);
}

/* 1 when the cached file of hash still hashes to its name (checked once per process and
** file state: a file that was replaced or touched is checked again). A file that does not match
** (a flipped bit on the disk, a hand edit) is removed and logged, so that it is fetched again:
** a wrong model must never give a "done" job with a different front. */
static int cache_verified(pw_t *p, const char *hash, const char *path)
{
  struct stat sb;
  if (stat(path, &sb) != 0)
    return 0;
  int64_t mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
  for (size_t i = 0; i < p->nverified; i++) {
    struct pw_verified_t *v = &p->verified[i];
    if (strcmp(v->hash, hash) == 0 && v->ino == (uint64_t)sb.st_ino &&
        v->size == (uint64_t)sb.st_size && v->mtime_ns == mtime_ns)
      return 1;
  }
  char got[65] = "";
  lpq_error_t err;
  if (lpq_sha256_file_hex(path, got, &err) != 0 || strcmp(got, hash) != 0) {
    lpq__pw_log(p, 1, "cached blob %s does not match its hash (%s%s); removed, fetching it "
                "again", hash, got[0] && strcmp(got, hash) ? "its bytes hash to " : "",
                got[0] && strcmp(got, hash) ? got : err.msg);
    unlink(path);
    return 0;
  }
  size_t slot = p->nverified < sizeof p->verified / sizeof p->verified[0]
                    ? p->nverified++
                    : (size_t)(sb.st_ino % (sizeof p->verified / sizeof p->verified[0]));
  struct pw_verified_t *v = &p->verified[slot];
  memcpy(v->hash, hash, 65);
  v->ino = (uint64_t)sb.st_ino;
  v->size = (uint64_t)sb.st_size;
  v->mtime_ns = mtime_ns;
  return 1;
}

/* The first blob of t not in the cache (or not matching its hash), or NULL. */
static const char *missing_blob(pw_t *p, const lpq_task_t *t)
{
  char path[PATH_MAX];
  const char *h[3] = {t->model_hash, t->data_hash, t->labels_hash};
  for (int i = 0; i < 3; i++)
    if (h[i][0] != '\0' && (!lpq__pw_cache_has(p, h[i], path, sizeof path) ||
                            !cache_verified(p, h[i], path)))
      return h[i];
  return NULL;
}

void lpq__pw_pending_advance(pw_t *p)
{
  pw_task_t **link = &p->pend_head, *prev = NULL;
  while (*link != NULL) {
    pw_task_t *t = *link;
    const char *need = missing_blob(p, &t->task);
    if (need == NULL) {
      *link = t->next;
      if (p->pend_tail == t)
        p->pend_tail = prev;
      t->fetch_ms = (double)(lpq__pw_now_ms() - t->arrived_ms);
      lpq__pw_threads_push(p, t);
      continue;
    }
    if (!p->fetch.active)
      lpq__pw_fetch_start(p, need);
    /* lpq__pw_fetch_start may have failed this very task */
    if (*link == t) {
      prev = t;
      link = &t->next;
    }
  }
}

void lpq__pw_pending_fail(pw_t *p, const char *hash, int status, const char *why)
{
  char h[65];
  snprintf(h, sizeof h, "%s", hash);
  pw_task_t **link = &p->pend_head, *prev = NULL;
  while (*link != NULL) {
    pw_task_t *t = *link;
    if (strcmp(t->task.model_hash, h) == 0 || strcmp(t->task.data_hash, h) == 0 ||
        strcmp(t->task.labels_hash, h) == 0) {
      *link = t->next;
      if (p->pend_tail == t)
        p->pend_tail = prev;
      lpq__pw_send_failure(p, t->task.task_id, status, why);
      lpq__pw_task_free(t);
    } else {
      prev = t;
      link = &t->next;
    }
  }
}
