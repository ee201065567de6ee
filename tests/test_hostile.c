/* tests/test_hostile.c: the real lpq-coordinator (and lpq-worker) under a hostile but fair
** client (issue 17), one test per class of problem: special files (a device, a FIFO, a folder)
** are not read and never block the loop; a large file is read and hashed off the loop; paths
** only for the Unix socket's local user, TCP clients upload; files private whatever the umask;
** labels and calib checked at submit; a worker refetches a cached blob that does not match its
** hash. */
#include "tests/proc_harness.h"

#include "common/common.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "hostile-test-token-0123456789"

TestSuite(hostile, .timeout = 180);

static void start(proc_svc_t *s) {
  cr_assert_eq(proc_svc_init(s, "lpq-hostile"), 0);
  cr_assert_eq(proc_svc_start_coordinator(s), 0, "the coordinator did not start (see %s)",
               s->log);
}

static int code_of(const json_t *r) {
  return (int)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}

static const char *message_of(const json_t *r) {
  const char *m = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
  return m ? m : "";
}

static json_t *submit_paths(proc_rpc_t *c, const char *model, const char *data) {
  return proc_rpc_call(c, "job.submit", json_pack("{s{ss} s{ss}}", "model", "path", model,
                                                  "data", "path", data));
}

/* Blob files (not folders, not temporaries) under the coordinator's blob folder. */
static int count_blob_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
      n += count_blob_files(sub);
    else
      n++;
  }
  if (d)
    closedir(d);
  return n;
}

Test(hostile, special_files_are_not_read) {
  proc_svc_t s;
  start(&s);
  char fifo[160], folder[160];
  snprintf(fifo, sizeof fifo, "%s/fifo", s.dir);
  snprintf(folder, sizeof folder, "%s", s.dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  const char *paths[] = {"/dev/zero", fifo, folder};
  for (int i = 0; i < 3; i++) {
    double t0 = proc_now_s();
    json_t *r = submit_paths(&s.api, paths[i], proc_fixture("score_small_x.npy"));
    double took = proc_now_s() - t0;
    cr_assert_not_null(r, "%s: no answer (%s)", paths[i], s.api.error);
    cr_assert_eq(code_of(r), -32602, "%s: %s", paths[i], json_dumps(r, 0));
    cr_assert(strstr(message_of(r), "not a regular file"), "%s", message_of(r));
    cr_assert_lt(took, 2.0, "%s took %.2f s", paths[i], took);
    json_decref(r);
  }
  json_t *st = proc_rpc_result(&s.api, "server.stats", NULL);
  cr_assert_not_null(st, "%s", s.api.error);
  json_decref(st);
  proc_svc_stop(&s);
}

Test(hostile, large_file_is_read_off_the_loop_and_refused_upload_removed) {
  proc_svc_t s;
  start(&s);
  char big[160];
  snprintf(big, sizeof big, "%s/big.onnx", s.dir);
  int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0);
  static char chunk[1 << 20];
  memset(chunk, 0x5a, sizeof chunk);
  for (int i = 0; i < 96; i++)
    cr_assert_eq(write(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
  close(fd);
  int a = proc_unix_connect(s.sock), b = proc_unix_connect(s.sock);
  cr_assert(a >= 0 && b >= 0);
  char line[512];
  int n = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"job.submit\","
                   "\"params\":{\"model\":{\"path\":\"%s\"},\"data\":{\"path\":\"%s\"}}}\n", big,
                   proc_fixture("score_small_x.npy"));
  cr_assert_eq(write(a, line, (size_t)n), n);
  usleep(20000); /* the submit's line is read first */
  char buf[4096];
  const char *stats = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"server.stats\"}\n";
  double t0 = proc_now_s();
  cr_assert_gt(proc_roundtrip(b, stats, strlen(stats), buf, sizeof buf), 0);
  double stats_s = proc_now_s() - t0;
  struct pollfd p = {.fd = a, .events = POLLIN};
  int submit_answered = poll(&p, 1, 0);
  cr_assert_eq(submit_answered, 0, "the submit was answered before server.stats (%.3f s): the "
               "96 MiB file was read on the loop", stats_s);
  cr_assert_gt(proc_roundtrip(a, "", 0, buf, sizeof buf), 0);
  json_t *r = json_loads(buf, 0, NULL);
  cr_assert_eq(code_of(r), -32015, "%s", buf);
  json_decref(r);
  close(a);
  close(b);
  char blobs[200];
  snprintf(blobs, sizeof blobs, "%s.blobs", s.db);
  cr_assert_eq(count_blob_files(blobs), 0, "the refused model's blob file was kept");
  proc_svc_stop(&s);
}

Test(hostile, paths_only_for_local_clients_and_files_private) {
  proc_svc_t s;
  cr_assert_eq(proc_svc_init(&s, "lpq-hostile"), 0);
  char tok[160], tcp[64];
  snprintf(tok, sizeof tok, "%s/token", s.dir);
  FILE *f = fopen(tok, "w");
  fputs(TOKEN "\n", f);
  fclose(f);
  chmod(tok, 0600);
  int port = 23000 + getpid() % 20000;
  snprintf(tcp, sizeof tcp, "127.0.0.1:%d", port);
  s.extra[0] = "--tcp";
  s.extra[1] = tcp;
  s.extra[2] = "--token-file";
  s.extra[3] = tok;
  mode_t old = umask(022);
  int rc = proc_svc_start_coordinator(&s);
  umask(old);
  cr_assert_eq(rc, 0, "the coordinator did not start (see %s)", s.log);
  /* relative paths are refused */
  json_t *r = submit_paths(&s.api, "tests/fixtures/score_small.onnx", proc_fixture("score_small_x.npy"));
  cr_assert_eq(code_of(r), -32602, "%s", json_dumps(r, 0));
  cr_assert(strstr(message_of(r), "absolute"), "%s", message_of(r));
  json_decref(r);
  /* a job by path from the local user: its files are the coordinator's user's alone */
  r = submit_paths(&s.api, proc_fixture("score_small.onnx"), proc_fixture("score_small_x.npy"));
  cr_assert_not_null(json_object_get(r, "result"), "%s", json_dumps(r, 0));
  json_decref(r);
  char path[256];
  struct stat st;
  const char *files[] = {"", "-wal", ".blobs"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s%s", s.db, files[i]);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_assert_eq(st.st_mode & 077, 0, "%s has mode %03o", path, st.st_mode & 0777);
  }
  /* a TCP client names a path: refused, it must upload */
  char line[512], buf[4096];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(0x7f000001);
  cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
  const char *auth = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"auth\",\"params\":{\"token\":\""
                     TOKEN "\"}}\n";
  cr_assert_gt(proc_roundtrip(fd, auth, strlen(auth), buf, sizeof buf), 0);
  int n = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"job.submit\","
                   "\"params\":{\"model\":{\"path\":\"%s\"},\"data\":{\"path\":\"/etc/passwd\"}}}\n",
                   proc_fixture("score_small.onnx"));
  cr_assert_gt(proc_roundtrip(fd, line, (size_t)n, buf, sizeof buf), 0);
  r = json_loads(buf, 0, NULL);
  cr_assert_eq(code_of(r), -32602, "%s", buf);
  cr_assert(strstr(message_of(r), "upload"), "%s", buf);
  json_decref(r);
  close(fd);
  proc_svc_stop(&s);
}

/* A .npy of int64 labels (count values, each `value`, or float32 when as_float). */
static void write_labels(const char *path, int64_t count, int64_t value, int as_float) {
  int64_t shape[1] = {count};
  lpq_array_t *a = lpq_array_new(as_float ? LPQ_DT_F32 : LPQ_DT_I64, 1, shape, NULL);
  cr_assert_not_null(a);
  for (int64_t i = 0; i < count; i++) {
    if (as_float)
      ((float *)a->data)[i] = (float)value;
    else
      ((int64_t *)a->data)[i] = i == count - 1 ? value : 0;
  }
  cr_assert_eq(lpq_save_npy(path, a, NULL), 0);
  lpq_array_free(&a);
}

Test(hostile, labels_and_calib_checked_at_submit) {
  proc_svc_t s;
  start(&s);
  lpq_array_t *x = NULL;
  cr_assert_eq(lpq_load_array(proc_fixture("score_small_x.npy"), &x, NULL), 0);
  int64_t samples = x->shape[0];
  lpq_array_free(&x);
  char lab[160];
  snprintf(lab, sizeof lab, "%s/labels.npy", s.dir);
  struct {
    int64_t count, value;
    int as_float;
    const char *says;
  } bad[] = {{samples, 100000, 0, "outside the model's classes"},
             {samples + 3, 0, 0, "labels for"},
             {samples, 1, 1, "int64 or uint8"}};
  for (int i = 0; i < 3; i++) {
    write_labels(lab, bad[i].count, bad[i].value, bad[i].as_float);
    json_t *r = proc_rpc_call(&s.api, "job.submit",
                              json_pack("{s{ss} s{ss} s{ss}}", "model", "path",
                                        proc_fixture("score_small.onnx"), "data", "path",
                                        proc_fixture("score_small_x.npy"), "labels", "path", lab));
    cr_assert_eq(code_of(r), -32015, "%d: %s", i, json_dumps(r, 0));
    cr_assert(strstr(message_of(r), bad[i].says), "%d: %s", i, message_of(r));
    json_decref(r);
  }
  /* calib above the data's size: refused when asked for, reduced and stored so by default */
  json_t *r = proc_rpc_call(&s.api, "job.submit",
                            json_pack("{s{ss} s{ss} s{si}}", "model", "path",
                                      proc_fixture("score_small.onnx"), "data", "path",
                                      proc_fixture("score_small_x.npy"), "settings", "calib",
                                      (int)samples + 1));
  cr_assert_eq(code_of(r), -32602, "%s", json_dumps(r, 0));
  cr_assert(strstr(message_of(r), "settings.calib"), "%s", message_of(r));
  json_decref(r);
  r = proc_rpc_result(&s.api, "job.submit", json_pack("{s{ss} s{ss}}", "model", "path",
                                                     proc_fixture("score_small.onnx"), "data",
                                                     "path", proc_fixture("score_small_x.npy")));
  cr_assert_not_null(r, "%s", s.api.error);
  json_int_t id = json_integer_value(json_object_get(r, "job"));
  json_decref(r);
  r = proc_rpc_result(&s.api, "job.get", json_pack("{sI}", "job", id));
  cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "settings"), "calib")),
               samples, "%s", json_dumps(r, 0));
  json_decref(r);
  proc_svc_stop(&s);
}

Test(hostile, worker_refetches_a_cached_blob_that_does_not_match) {
  proc_svc_t s;
  start(&s);
  cr_assert_eq(proc_svc_start_worker(&s, NULL, "1"), 0);
  const char *settings = "--set population=4 --set generations=1";
  int64_t first = proc_lpqctl_submit(NULL, s.sock, settings);
  cr_assert_gt(first, 0);
  char *st = proc_lpqctl_wait(NULL, s.sock, first, 90);
  cr_assert_str_eq(st, "done");
  free(st);
  char *front = proc_lpqctl_front(NULL, s.sock, first);
  /* flip one bit of the cached model */
  json_t *job = proc_rpc_result(&s.api, "job.get", json_pack("{sI}", "job", (json_int_t)first));
  char cached[256], wlog[160];
  snprintf(cached, sizeof cached, "%s/cache0/%s", s.dir,
           json_string_value(json_object_get(json_object_get(job, "settings"), "model")));
  json_decref(job);
  int fd = open(cached, O_RDWR);
  cr_assert_geq(fd, 0, "%s", cached);
  unsigned char byte;
  cr_assert_eq(pread(fd, &byte, 1, 100), 1);
  byte ^= 0x10;
  cr_assert_eq(pwrite(fd, &byte, 1, 100), 1);
  close(fd);
  /* a new worker process (a restart) with the same cache */
  proc_stop(&s.workers[0], SIGTERM, 10);
  s.nworkers = 0;
  cr_assert_eq(proc_svc_start_worker(&s, NULL, "1"), 0);
  int64_t second = proc_lpqctl_submit(NULL, s.sock, settings);
  st = proc_lpqctl_wait(NULL, s.sock, second, 90);
  cr_assert_str_eq(st, "done");
  free(st);
  char *again = proc_lpqctl_front(NULL, s.sock, second);
  cr_assert_str_eq(again, front, "the flipped bit changed the front");
  snprintf(wlog, sizeof wlog, "%s/worker0.log", s.dir);
  cr_assert(proc_file_has(wlog, "does not match its hash"), "the worker did not log it");
  free(front);
  free(again);
  proc_svc_stop(&s);
}

static json_t *export_to(proc_svc_t *s, int64_t job, const char *dir) {
  return proc_rpc_call(&s->api, "job.export", json_pack("{sI ss}", "job", (json_int_t)job,
                                                        "dir", dir));
}

Test(hostile, export_never_follows_links_nor_overwrites) {
  proc_svc_t s;
  start(&s);
  cr_assert_eq(proc_svc_start_worker(&s, "1", "2"), 0);
  int64_t id = proc_lpqctl_submit(NULL, s.sock, "--set population=4 --set generations=1");
  cr_assert_gt(id, 0);
  char *st = proc_lpqctl_wait(NULL, s.sock, id, 60);
  cr_assert_str_eq(st, "done");
  free(st);
  char victim[160], planted[160], link[200], fresh[160], missing[160];
  snprintf(victim, sizeof victim, "%s/victim", s.dir);
  snprintf(planted, sizeof planted, "%s/planted", s.dir);
  snprintf(link, sizeof link, "%s/config.json", planted);
  snprintf(fresh, sizeof fresh, "%s/fresh", s.dir);
  snprintf(missing, sizeof missing, "%s/no/such/folder", s.dir);
  FILE *f = fopen(victim, "w");
  fputs("precious\n", f);
  fclose(f);
  cr_assert_eq(mkdir(planted, 0700), 0);
  cr_assert_eq(symlink(victim, link), 0);
  cr_assert_eq(mkdir(fresh, 0700), 0);
  json_t *r = export_to(&s, id, planted);
  cr_assert_eq(code_of(r), -32014, "%s", json_dumps(r, 0));
  cr_assert(strstr(message_of(r), "not overwriting"), "%s", message_of(r));
  json_decref(r);
  cr_assert(proc_file_has(victim, "precious"), "the export wrote through the link");
  r = export_to(&s, id, "relative/dir");
  cr_assert_eq(code_of(r), -32602, "%s", json_dumps(r, 0));
  json_decref(r);
  r = export_to(&s, id, missing);
  cr_assert_eq(code_of(r), -32014, "%s", json_dumps(r, 0));
  json_decref(r);
  struct stat sb;
  cr_assert_neq(stat(missing, &sb), 0, "the export created folders");
  r = export_to(&s, id, fresh);
  cr_assert_not_null(json_object_get(r, "result"), "%s", json_dumps(r, 0));
  json_decref(r);
  char out[220];
  snprintf(out, sizeof out, "%s/config.json", fresh);
  cr_assert_eq(stat(out, &sb), 0);
  cr_assert_eq(sb.st_mode & 077, 0, "mode %03o", sb.st_mode & 0777);
  r = export_to(&s, id, fresh); /* again: the file is there, it is not replaced */
  cr_assert_eq(code_of(r), -32014, "%s", json_dumps(r, 0));
  json_decref(r);
  proc_svc_stop(&s);
}

/* Runs lpq-coordinator on db with its own socket until it exits (at most 10 s): its status, its
** log in log. */
static int run_coordinator(const proc_svc_t *s, const char *db, const char *name, char *log,
                           size_t log_size) {
  char sock[160];
  snprintf(sock, sizeof sock, "%s/%s.sock", s->dir, name);
  snprintf(log, log_size, "%s/%s.log", s->dir, name);
  char *argv[] = {(char *)proc_bin("lpq-coordinator"), "--db", (char *)db, "--socket", sock,
                  "--workers", "tcp://127.0.0.1:*", NULL};
  pid_t pid = proc_spawn(argv, log, NULL);
  cr_assert_gt(pid, 0);
  for (int i = 0; i < 200; i++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(50000);
  }
  proc_stop(&pid, SIGTERM, 5);
  return -2; /* it kept running */
}

Test(hostile, one_coordinator_per_database_and_damage_found_at_start) {
  proc_svc_t s;
  start(&s);
  char log[200];
  int rc = run_coordinator(&s, s.db, "second", log, sizeof log);
  cr_assert_eq(rc, 1, "a second coordinator on the same database: status %d", rc);
  char want[64];
  snprintf(want, sizeof want, "(pid %ld", (long)s.coord);
  cr_assert(proc_file_has(log, "in use by another lpq-coordinator") && proc_file_has(log, want),
            "the refusal does not say who holds the database (see %s)", log);
  json_t *r = submit_paths(&s.api, proc_fixture("score_small.onnx"),
                           proc_fixture("score_small_x.npy"));
  json_decref(r);
  cr_assert_eq(proc_svc_stop_coordinator(&s, 10), 0);
  /* one damaged page in the middle of the file */
  int fd = open(s.db, O_RDWR);
  cr_assert_geq(fd, 0);
  struct stat sb;
  fstat(fd, &sb);
  cr_assert_gt(sb.st_size, 4 * 4096);
  static unsigned char junk[4096];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)(i * 37 + 11);
  cr_assert_eq(pwrite(fd, junk, sizeof junk, 2 * 4096), (ssize_t)sizeof junk);
  close(fd);
  rc = run_coordinator(&s, s.db, "damaged", log, sizeof log);
  cr_assert_eq(rc, 1, "a damaged database was served (status %d, see %s)", rc, log);
  cr_assert(proc_file_has(log, "damaged") || proc_file_has(log, "malformed"), "see %s", log);
  proc_svc_stop(&s);
}
