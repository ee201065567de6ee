/* tools/lpq/main.c: `lpq`, the offline tool: one subcommand per capability (DESIGN section 6). */
#include "tools/lpq/lpq.h"
#include "worker/worker.h"

#include <stdio.h>
#include <string.h>

static const lpq_command_t commands[] = {
    {"format", "a number format's properties, or every code and its value", cmd_format},
    {"accel", "LPA cost (cycles, latency, energy, area, EDP) and the baseline accelerators", cmd_accel},
    {"run", "full-precision inference over a data set (top-1, logits, timing)", cmd_run},
    {"search", "a whole LPQ search on this machine: the Pareto front of formats", cmd_search},
    {"eval", "one candidate's score: L_CO, top-1, mean bits, cost", cmd_eval},
    {"export", "a candidate as a quantized ONNX model (QDQ, LP codes) and its encodings", cmd_export},
    {"sensitivity", "each layer alone at each weight width: rise of L_CO, top-1", cmd_sensitivity},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
  fprintf(out, "usage: lpq COMMAND [options]   (lpq COMMAND --help for a command's options)\n\n"
               "commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  /* every command that computes: OpenBLAS's fastest kernels for this CPU (a re-execution) */
  lpq_blas_select_kernels(argv);
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "lpq: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
