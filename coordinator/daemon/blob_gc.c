/* coordinator/daemon/blob_gc.c: uploads no job uses do not stay forever. blob.put stores bytes
** for a later job.submit by hash; when no job names a blob within --blob-grace-s of its upload
** (and no request in flight claims it), its row and file are removed. Blobs a job names (also
** a finished one: job.export and the history need them) are kept. */
#include "coordinator/daemon/daemon.h"

static int claimed(void *ctx, const char *hash) { return submits_claim(ctx, hash); }

static void collect(uv_timer_t *t) {
  daemon_t *d = t->data;
  if (store_paused(d))
    return; /* the store cannot be written now; the next round tries */
  size_t removed = 0;
  lpq_error_t err;
  if (lpq_store_blob_collect(d->store, d->blob_grace_s, claimed, d, &removed, &err) != 0)
    daemon_log(d, 1, "blob collection: %s", err.msg);
  else if (removed)
    daemon_log(d, 2, "removed %zu blob%s no job named within %g s", removed,
               removed == 1 ? "" : "s", d->blob_grace_s);
}

void blob_gc_init(daemon_t *d) {
  uv_timer_init(d->loop, &d->blob_gc);
  d->blob_gc.data = d;
  double every_s = d->blob_grace_s / 4;
  every_s = every_s < 0.25 ? 0.25 : every_s > 300 ? 300 : every_s;
  uint64_t every_ms = (uint64_t)(every_s * 1000);
  uv_timer_start(&d->blob_gc, collect, 0, every_ms);
}
