/* tools/lpqctl/main.c: `lpqctl`, the client of lpq-coordinator's API (DESIGN section 3). */
#include "tools/lpqctl/lpqctl.h"

#include <string.h>

static const ctl_command_t commands[] = {
    {"submit", "submit a search job and follow its progress", cmd_submit},
    {"list", "jobs, newest first", cmd_list},
    {"status", "one job: status, progress, best so far, ETA", cmd_status},
    {"watch", "follow a job's progress until it ends", cmd_watch},
    {"cancel", "cancel a job", cmd_cancel},
    {"pareto", "a generation's Pareto front as a table, and an SVG plot", cmd_pareto},
    {"sensitivity", "a job's per-layer sensitivity: rise of L_CO per layer and width",
     cmd_sensitivity},
    {"export", "the chosen config, the LP-rounded ONNX model, the packed LP weights", cmd_export},
    {"workers", "the workers and what they are doing", cmd_workers},
    {"history", "any table or view of the coordinator's database, as CSV or JSON", cmd_history},
    {"stats", "the API server's counters (connections, requests, latency)", cmd_stats},
    {"keygen", "a CURVE key pair for the worker pool: NAME.key and NAME.pub", cmd_keygen},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
  fprintf(out,
          "usage: lpqctl [connection] COMMAND [options]   (lpqctl COMMAND --help for its options)\n"
          "\n"
          "connection (before or after COMMAND):\n"
          "  --socket PATH     the coordinator's Unix socket [$LPQ_SOCKET, else %s]\n"
          "  --tcp HOST:PORT   its TCP API instead; needs --token T (or $LPQ_TOKEN)\n"
          "  --json            print results as JSON\n"
          "\n"
          "commands:\n",
          LPQ_API_DEFAULT_SOCKET);
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  ctl_t ctl = {.fd = -1};
  static const struct option opts[] = {CTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
  int c;
  optind = 0;
  while ((c = ctl_getopt(&ctl, NULL, argc, argv, "h", opts)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return CTL_OK;
    }
    usage(stderr);
    return CTL_USAGE;
  }
  int i = optind;
  if (i >= argc) {
    usage(stderr);
    return CTL_USAGE;
  }
  if (strcmp(argv[i], "help") == 0) {
    usage(stdout);
    return CTL_OK;
  }
  for (size_t k = 0; k < NCOMMANDS; k++)
    if (strcmp(argv[i], commands[k].name) == 0) {
      int rc = commands[k].run(&ctl, argc - i, argv + i);
      ctl_close(&ctl);
      return rc;
    }
  fprintf(stderr, "lpqctl: unknown command '%s'\n", argv[i]);
  usage(stderr);
  return CTL_USAGE;
}
