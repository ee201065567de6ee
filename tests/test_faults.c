/* tests/test_faults.c: faults injected into the real lpq-coordinator with a job running: its
** SQLite database on a disk that fills up (a small tmpfs), and SIGTERM mid-job. The job must
** come through both with the front of an undisturbed run. */
#define _GNU_SOURCE /* unshare */
#include "tests/faults_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>

/* Fills the file system holding path with a file until it is full; the file's size. */
static size_t fill_disk(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
  static char block[1 << 16];
  size_t total = 0;
  for (;;) {
    ssize_t w = write(fd, block, sizeof block);
    if (w <= 0)
      break;
    total += (size_t)w;
  }
  for (;;) { /* the last few bytes */
    ssize_t w = write(fd, block, 512);
    if (w <= 0)
      break;
    total += (size_t)w;
  }
  close(fd);
  return total;
}

Test(faults, a_full_disk_pauses_the_job_which_resumes_to_the_same_front) {
  char *ref = f_reference_front(F_LONG_JOB, F_LONG_SEED);
  proc_svc_t s;
  f_init(&s);
  char mnt[128], filler[160];
  snprintf(mnt, sizeof mnt, "%s/disk", s.dir);
  cr_assert_eq(mkdir(mnt, 0700), 0);
  /* in a mount namespace of this test's own, so the tmpfs goes away with the test's processes
  ** whatever happens */
  if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700") != 0) {
    int e = errno;
    proc_svc_stop(&s);
    free(ref);
    /* said on stderr too: make test's output shows it, not only --verbose */
    fprintf(stderr, "faults: full-disk test skipped: cannot mount a tmpfs here (%s): it needs "
            "root (CAP_SYS_ADMIN)\n", strerror(e));
    cr_skip_test("cannot mount a tmpfs here (%s): the full-disk test needs root (CAP_SYS_ADMIN)",
                 strerror(e));
  }
  snprintf(s.db, sizeof s.db, "%s/lpq.db", mnt);
  snprintf(filler, sizeof filler, "%s/filler", mnt);
  f_start_coordinator(&s);
  f_start_worker(&s, "40");
  int64_t id = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  /* let it commit a generation or two, then take the disk's last byte */
  json_t *g = NULL;
  double t0 = proc_now_s();
  for (;;) {
    char *st = f_status(&s, id, &g);
    long long evals = (long long)json_integer_value(json_object_get(g, "evaluations"));
    json_decref(g);
    cr_assert(!strcmp(st, "queued") || !strcmp(st, "running"), "status %s", st);
    free(st);
    if (evals >= 12)
      break;
    cr_assert_lt(proc_now_s() - t0, 30, "the job did not start");
    usleep(20000);
  }
  size_t filled = fill_disk(filler);
  cr_assert_gt(filled, 0);
  double t_full = proc_now_s();
  /* the job pauses with the store's error, visible through job.get */
  char *st = NULL;
  const char *why = NULL;
  t0 = proc_now_s();
  for (;;) {
    st = f_status(&s, id, &g);
    why = json_string_value(json_object_get(g, "error"));
    if (!strcmp(st, "paused"))
      break;
    cr_assert(!proc_job_final(st), "the job ended (%s: %s) instead of pausing", st, why ? why : "");
    json_decref(g);
    free(st);
    cr_assert_lt(proc_now_s() - t0, 20, "the job never paused on the full disk");
    usleep(20000);
  }
  double paused_after = proc_now_s() - t_full;
  cr_assert_not_null(why, "a paused job says why");
  cr_assert(strstr(why, "full") != NULL, "the reason names the full disk: %s", why);
  char d_why[256];
  snprintf(d_why, sizeof d_why, "%s", why);
  free(st);
  long long evals_paused = (long long)json_integer_value(json_object_get(g, "evaluations"));
  json_decref(g);
  json_t *stats = f_ok(&s, "server.stats", NULL);
  cr_assert(json_is_true(json_object_get(json_object_get(stats, "jobs"), "paused")));
  json_decref(stats);
  /* it stays paused, the database intact, while the disk is full */
  usleep(1500000);
  st = f_status(&s, id, &g);
  cr_assert_str_eq(st, "paused");
  cr_assert_leq(json_integer_value(json_object_get(g, "evaluations")), evals_paused + 8,
                "a paused job runs at most the rest of its generation");
  free(st);
  json_decref(g);
  char *ok = f_integrity(s.db);
  cr_assert_str_eq(ok, "ok", "integrity_check on the full disk: %s", ok);
  free(ok);
  cr_assert(proc_file_has(s.log, "jobs paused"), "the log says the jobs paused");
  /* space returns: the job resumes and ends as if nothing happened */
  cr_assert_eq(unlink(filler), 0);
  double t_free = proc_now_s(), resumed_after = -1;
  for (;;) {
    st = f_status(&s, id, NULL);
    if (strcmp(st, "paused") != 0)
      break;
    free(st);
    cr_assert_lt(proc_now_s() - t_free, 20, "the job stays paused with space back");
    usleep(10000);
  }
  resumed_after = proc_now_s() - t_free;
  free(st);
  fprintf(stderr, "full disk: %zu bytes of filler; paused %.2f s after the disk filled (\"%s\"), "
          "running again %.2f s after the filler went\n", filled, paused_after, d_why,
          resumed_after);
  st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *front = f_front(&s, id);
  cr_assert_str_eq(front, ref, "the front after the pause differs from the undisturbed one");
  free(front);
  free(ref);
  cr_assert(proc_file_has(s.log, "jobs resume"), "the log says the jobs resumed");
  /* the pause is in the job's events */
  json_t *ev = f_ok(&s, "db.query", json_pack("{s:s, s:{s:I}}", "table", "events", "where",
                                              "job", (json_int_t)id));
  char *text = json_dumps(ev, JSON_COMPACT);
  cr_assert(strstr(text, "resumed") != NULL, "no pause event in %s", text);
  free(text);
  json_decref(ev);
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0);
  ok = f_integrity(s.db);
  cr_assert_str_eq(ok, "ok");
  free(ok);
  umount2(mnt, MNT_DETACH);
  proc_svc_stop(&s);
}

Test(faults, sigterm_mid_job_shuts_down_cleanly_and_the_job_resumes) {
  char *ref = f_reference_front(F_LONG_JOB, F_LONG_SEED);
  proc_svc_t s;
  f_init(&s);
  f_start_coordinator(&s);
  f_start_worker(&s, "30");
  f_start_worker(&s, "30");
  int64_t id = f_submit(&s, F_LONG_JOB, F_LONG_SEED);
  json_t *g = NULL;
  double t0 = proc_now_s();
  for (;;) { /* mid-job: a generation committed, more running */
    char *st = f_status(&s, id, &g);
    long long gen = (long long)json_integer_value(json_object_get(g, "generation"));
    json_decref(g);
    cr_assert(!strcmp(st, "queued") || !strcmp(st, "running"), "status %s", st);
    free(st);
    if (gen >= 2)
      break;
    cr_assert_lt(proc_now_s() - t0, 30, "the job did not get going");
    usleep(20000);
  }
  t0 = proc_now_s();
  int code = proc_svc_stop_coordinator(&s, 10);
  double took = proc_now_s() - t0;
  cr_assert_eq(code, 0, "SIGTERM: exit status %d", code);
  fprintf(stderr, "SIGTERM mid-job (generation 2 or later): exit 0 after %.3f s\n", took);
  cr_assert_lt(took, 5, "shutdown took %.1f s", took);
  struct stat stt;
  cr_assert_neq(stat(s.sock, &stt), 0, "the socket file is left behind");
  char wal[200];
  snprintf(wal, sizeof wal, "%s-wal", s.db);
  cr_assert(stat(wal, &stt) != 0 || stt.st_size == 0, "the WAL was not checkpointed (%lld bytes)",
            (long long)stt.st_size);
  cr_assert(proc_file_has(s.log, "SIGTERM: shutting down"));
  char *ok = f_integrity(s.db);
  cr_assert_str_eq(ok, "ok");
  free(ok);
  /* the database says it is unfinished; a restart resumes it to the same front */
  cr_assert_eq(f_sql_int(s.db, "SELECT count(*) FROM jobs WHERE status IN ('queued', "
                               "'running', 'paused')"), 1);
  f_start_coordinator(&s);
  char *st = f_wait_job(&s, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char *front = f_front(&s, id);
  cr_assert_str_eq(front, ref);
  free(front);
  free(ref);
  cr_assert(proc_file_has(s.log, "resumes"));
  proc_svc_stop(&s);
}
