/* tools/lpq/lpq.h: the subcommands of the offline tool `lpq`. Each takes the arguments after
** its name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef LPQ_TOOL_LPQ_H
#define LPQ_TOOL_LPQ_H

typedef struct lpq_command_t {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} lpq_command_t;

#include "engine/engine.h"

int cmd_format(int argc, char **argv);
int cmd_accel(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Shared by the subcommands (tools/lpq/inputs.c). */
/* "MEAN,STD" -> mean, std (std > 0); -1 when malformed. */
int tool_parse_norm(const char *text, double *mean, double *std);
/* Class labels from .npy or IDX (int64, int32, uint8, int8), as int64; caller frees. */
int tool_load_labels(const char *path, int64_t **labels, size_t *count, lpq_error_t *err);
/* Whether data x ([N, ...]) fits the graph's single input apart from the batch. */
int tool_check_input_fits(const lpq_graph_t *g, const lpq_array_t *x, const char *path,
                          lpq_error_t *err);

/* A scatter plot (tools/lpq/plot_svg.c): all points (x[i], y[i]) in grey, front[] (indices into
** x and y, in drawing order) in colour and joined. */
int tool_plot_front_svg(const char *path, const char *title, const char *xlabel,
                        const char *ylabel, const double *x, const double *y, size_t n,
                        const size_t *front, size_t nfront, lpq_error_t *err);

/* A heat map (tools/lpq/plot_heat.c): value[l * (hi-lo+1) + b-lo] for layer l (names[l]) at
** b bits, coloured on a log scale, with a legend; NAN cells grey. */
int tool_plot_heat_svg(const char *path, const char *title, const char *const *names,
                       size_t layers, int lo, int hi, const double *value, lpq_error_t *err);

#endif
