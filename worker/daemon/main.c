/*
** worker/daemon/main.c: lpq-worker, the worker daemon (DESIGN section 3): its command line and
** signals; the work is lpq_pool_worker_run (worker/pool.c).
*/
#include "worker/daemon/worker_daemon.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: lpq-worker --connect tcp://HOST:PORT [--threads N] [--cache-dir DIR]\n"
          "                  [--id NAME] [--synthetic MS] [--heartbeat-ms MS] [--liveness N]\n"
          "                  [--log-level 0..3] [--curve-server-key FILE --curve-secret FILE]\n"
          "                  [--cut-cache-mb MB]\n"
          "Evaluates candidates for an lpq coordinator. Blobs (models, data) are fetched by hash\n"
          "into --cache-dir (default ./var/worker-cache) and kept. --synthetic MS scores from\n"
          "the genome alone after sleeping MS milliseconds (tests, benchmarks). --cut-cache-mb:\n"
          "memory per loaded model for the states at the forward pass's cuts, from which\n"
          "candidates sharing their first layers' formats resume (0: off; default %d). SIGTERM or\n"
          "SIGINT: hand back tasks not started, finish the running ones, say BYE, exit 0.\n"
          "CURVE (a coordinator on another host): --curve-server-key is the coordinator's .pub\n"
          "(pinned), --curve-secret this worker's .key (`lpqctl keygen NAME`; the coordinator\n"
          "must hold NAME.pub in its --curve-keys folder).\n", LPQ_SCORE_CUT_MB_DEFAULT);
}

/* A whole-string number in [lo, hi], or -1. */
static long parse_long(const char *s, long lo, long hi)
{
  char *end = NULL;
  long v = strtol(s, &end, 10);
  return (end == s || *end != '\0' || v < lo || v > hi) ? -1 : v;
}

int main(int argc, char **argv)
{
  umask(077); /* the blob cache holds the users' models and data: the worker's user's alone */
  lpq_blas_select_kernels(argv); /* the local terms' GEMMs on OpenBLAS's fastest kernels */
  static const struct option longopts[] = {
      {"connect", required_argument, NULL, 'c'},   {"threads", required_argument, NULL, 't'},
      {"cache-dir", required_argument, NULL, 'd'}, {"id", required_argument, NULL, 'i'},
      {"synthetic", required_argument, NULL, 's'}, {"heartbeat-ms", required_argument, NULL, 'h'},
      {"liveness", required_argument, NULL, 'l'},  {"log-level", required_argument, NULL, 'v'},
      {"curve-server-key", required_argument, NULL, 'S'},
      {"curve-secret", required_argument, NULL, 'K'},
      {"cut-cache-mb", required_argument, NULL, 'C'},
      {"help", no_argument, NULL, 'H'},            {NULL, 0, NULL, 0},
  };
  lpq_pool_worker_opts_t o = {0};
  const char *synthetic = NULL, *server_key_file = NULL, *secret_file = NULL, *cut_mb = NULL;
  static char server_key[LPQ_CURVE_KEY_LEN + 1], secret_key[LPQ_CURVE_KEY_LEN + 1];
  long v;
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o.connect = optarg; break;
    case 'd': o.cache_dir = optarg; break;
    case 'i': o.worker_id = optarg; break;
    case 's': synthetic = optarg; break;
    case 'S': server_key_file = optarg; break;
    case 'K': secret_file = optarg; break;
    case 'C': cut_mb = optarg; break;
    case 't':
    case 'h':
    case 'l':
    case 'v':
      v = parse_long(optarg, c == 'v' ? 0 : 1, c == 't' ? 1024 : c == 'h' ? 3600000 : 100);
      if (v < 0) {
        fprintf(stderr, "lpq-worker: bad value '%s' for --%s\n", optarg,
                c == 't' ? "threads" : c == 'h' ? "heartbeat-ms" : c == 'l' ? "liveness"
                                                                            : "log-level");
        return 2;
      }
      if (c == 't')
        o.threads = (unsigned)v;
      else if (c == 'h')
        o.heartbeat_s = (double)v / 1000;
      else if (c == 'l')
        o.liveness = (int)v;
      else
        o.log_level = v == 0 ? -1 : (int)v; /* 0 in the options means the default */
      break;
    case 'H': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (o.connect == NULL || optind != argc) {
    usage(stderr);
    return 2;
  }
  lpq_error_t err;
  if ((server_key_file == NULL) != (secret_file == NULL)) {
    fprintf(stderr, "lpq-worker: CURVE needs both --curve-server-key and --curve-secret\n");
    return 2;
  }
  if (server_key_file != NULL) {
    if (lpq_curve_key_read(server_key_file, server_key, &err) != 0 ||
        lpq_curve_key_read(secret_file, secret_key, &err) != 0) {
      fprintf(stderr, "lpq-worker: %s\n", err.msg);
      return 2;
    }
    o.curve_server_key = server_key;
    o.curve_secret_key = secret_key;
  }
  if (worker_evaluator_create(synthetic ? "synthetic" : "real", synthetic ? synthetic : cut_mb, &o.evaluator,
                              &err) != 0) {
    fprintf(stderr, "lpq-worker: %s\n", err.msg);
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  o.stop = &stop_requested;
  int rc = lpq_pool_worker_run(&o, &err);
  if (o.evaluator.free_ctx != NULL)
    o.evaluator.free_ctx(o.evaluator.ctx);
  if (rc != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  return 0;
}
