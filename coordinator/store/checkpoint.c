/*
** coordinator/store/checkpoint.c: WAL checkpoints on a thread of their own. A checkpoint
** copies the WAL into the database file and fsyncs it; on a busy disk that takes tens of
** milliseconds, which the writer (the coordinator's libuv loop) must not wait for. So the
** writer's WAL hook only signals, and this thread checkpoints (PASSIVE: it never blocks the
** writer) through its own connection. Commits stay atomic and ordered as before; a kill -9
** loses nothing that was committed (the WAL is in the file system), and a power loss at worst
** the last commits, as WAL with synchronous=NORMAL always allows.
** If the WAL still grows past STORE_WAL_HARD_FRAMES (the thread cannot keep up), the writer
** checkpoints itself, as SQLite's default would.
*/
#include "coordinator/store/store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_WAL_SOFT_FRAMES 1000  /* signal the thread (SQLite's default autocheckpoint) */
#define STORE_WAL_HARD_FRAMES 16000 /* ~64 MB: the writer checkpoints itself */

static void *checkpoint_main(void *arg) {
  store_checkpointer_t *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->stop && !c->wanted)
      pthread_cond_wait(&c->cv, &c->mu);
    if (c->stop)
      break;
    c->wanted = 0;
    pthread_mutex_unlock(&c->mu);
    int log_frames = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &copied);
    pthread_mutex_lock(&c->mu);
    c->checkpoints++;
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      c->failures++;
      snprintf(c->last_error, sizeof c->last_error, "%s", sqlite3_errmsg(c->db));
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames) {
  store_checkpointer_t *c = ctx;
  if (frames >= STORE_WAL_HARD_FRAMES) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
  }
  if (frames >= STORE_WAL_SOFT_FRAMES) {
    pthread_mutex_lock(&c->mu);
    c->wanted = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return SQLITE_OK;
}

int lpq__store_checkpointer_start(lpq_store_t *st, lpq_error_t *err) {
  store_checkpointer_t *c = &st->checkpointer;
  memset(c, 0, sizeof *c);
  int rc = sqlite3_open_v2(st->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    lpq_errorf(err, lpq__store_code(rc), "store: %s: opening the checkpoint connection: %s",
               st->path, c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    sqlite3_close(c->db);
    c->db = NULL;
    return err != NULL ? err->code : LPQ_EIO;
  }
  sqlite3_busy_timeout(c->db, 1000);
  if (pthread_mutex_init(&c->mu, NULL) != 0 || pthread_cond_init(&c->cv, NULL) != 0 ||
      pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
    sqlite3_close(c->db);
    c->db = NULL;
    return lpq_errorf(err, LPQ_ENOMEM, "store: %s: cannot start the checkpoint thread",
                      st->path);
  }
  c->running = 1;
  sqlite3_wal_hook(st->db, wal_hook, c);
  return 0;
}

void lpq__store_checkpointer_stop(lpq_store_t *st) {
  store_checkpointer_t *c = &st->checkpointer;
  if (st->db != NULL)
    sqlite3_wal_hook(st->db, NULL, NULL);
  if (c->running) {
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->running = 0;
  }
  sqlite3_close(c->db);
  c->db = NULL;
}
