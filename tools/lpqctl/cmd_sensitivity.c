/* tools/lpqctl/cmd_sensitivity.c: lpqctl sensitivity: a job's per-layer sensitivity as the
** coordinator stored it (job.sensitivity): one row per layer, the rise of L_CO per weight width,
** the most sensitive layers (by the rise at the middle width) marked. */
#include "tools/lpqctl/lpqctl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void sensitivity_usage(FILE *out) {
  fprintf(out, "usage: lpqctl sensitivity JOB [--top1] [--json]\n"
               "  the job's per-layer sensitivity (submitted with \"sensitivity\": true in its\n"
               "  settings): each layer alone at each weight width, the rise of L_CO over the\n"
               "  all-fp32 model; --top1 shows the calibration top-1 (%%) instead\n");
}

int cmd_sensitivity(ctl_t *ctl, int argc, char **argv) {
  enum { TOP1 = CTL_OPT_OWN };
  static const struct option opts[] = {CTL_COMMON_OPTIONS, {"top1", no_argument, NULL, TOP1},
                                       {NULL, 0, NULL, 0}};
  int top1 = 0, c;
  optind = 0;
  while ((c = ctl_getopt(ctl, "sensitivity", argc, argv, "h", opts)) != -1) {
    if (c == 'h') {
      sensitivity_usage(stdout);
      return CTL_OK;
    } else if (c == TOP1) {
      top1 = 1;
    } else {
      goto usage;
    }
  }
  if (optind + 1 != argc) {
    if (optind + 1 < argc)
      fprintf(stderr, "lpqctl sensitivity: unexpected argument '%s'\n", argv[optind + 1]);
    goto usage;
  }
  long job = ctl_job_id("sensitivity", argv[optind]);
  if (job == 0)
    goto usage;
  json_t *r;
  int rc = ctl_call(ctl, "job.sensitivity", json_pack("{s:I}", "job", (json_int_t)job), &r, NULL,
                    NULL);
  if (rc != CTL_OK)
    return rc;
  if (ctl->json) {
    ctl_print_json(r);
    json_decref(r);
    return CTL_OK;
  }
  json_t *bits = json_object_get(r, "bits"), *layers = json_object_get(r, "layers");
  size_t nb = json_array_size(bits), mid = nb / 2, i;
  /* rank by the rise at the middle width: the three most sensitive layers get a star */
  size_t nl = json_array_size(layers), *rank = calloc(nl ? nl : 1, sizeof *rank);
  for (size_t a = 0; rank && a < nl; a++) {
    double va = json_number_value(json_array_get(
        json_object_get(json_array_get(layers, a), "delta_l_co"), mid));
    for (size_t b = 0; b < nl; b++) {
      double vb = json_number_value(json_array_get(
          json_object_get(json_array_get(layers, b), "delta_l_co"), mid));
      rank[a] += vb > va;
    }
  }
  printf("job %ld: %s per layer and weight width (others fp32)%s\n", job,
         top1 ? "top-1 %" : "rise of L_CO", rank && nb ? "; * the 3 most sensitive" : "");
  printf("%3s  %-36s %9s", "#", "LAYER", "WEIGHTS");
  json_t *b;
  json_array_foreach(bits, i, b) printf(" %8lldb", json_integer_value(b));
  printf("\n");
  json_t *l;
  json_array_foreach(layers, i, l) {
    const char *name = json_string_value(json_object_get(l, "name"));
    printf("%3lld%c %-36.36s %9lld", json_integer_value(json_object_get(l, "index")),
           rank && rank[i] < 3 ? '*' : ' ', name ? name : "",
           json_integer_value(json_object_get(l, "weights")));
    json_t *row = json_object_get(l, top1 ? "top1" : "delta_l_co"), *v;
    size_t k;
    json_array_foreach(row, k, v) {
      char buf[32];
      if (top1 && json_is_number(v))
        snprintf(buf, sizeof buf, "%.2f", 100 * json_number_value(v));
      else
        ctl_num(v, "%.5f", buf, sizeof buf);
      printf(" %9s", buf);
    }
    printf("\n");
  }
  free(rank);
  json_decref(r);
  return CTL_OK;
usage:
  sensitivity_usage(stderr);
  return CTL_USAGE;
}
