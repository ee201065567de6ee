/* tools/lpq/inputs.c: what several subcommands share: loading model inputs and labels from
** .npy or IDX files, with --norm, and checking them against a model. */
#include "tools/lpq/lpq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tool_parse_norm(const char *text, double *mean, double *std) {
  char *end;
  *mean = strtod(text, &end);
  if (end == text || *end != ',')
    return -1;
  const char *p = end + 1;
  *std = strtod(p, &end);
  if (end == p || *end != '\0' || !isfinite(*mean) || !(*std > 0) || !isfinite(*std))
    return -1;
  return 0;
}

int tool_load_labels(const char *path, int64_t **labels, size_t *count, lpq_error_t *err) {
  lpq_array_t *a = NULL;
  int rc = lpq_load_array(path, &a, err);
  if (rc != 0)
    return rc;
  if (a->ndim != 1 && !(a->ndim == 2 && a->shape[1] == 1)) {
    char buf[96];
    rc = lpq_errorf(err, LPQ_EFORMAT, "%s: labels must be one-dimensional, not %s", path,
                    lpq_shape_str(a->ndim, a->shape, buf, sizeof buf));
    goto done;
  }
  int64_t *l = malloc((a->count ? a->count : 1) * sizeof *l);
  if (!l) {
    rc = lpq_errorf(err, LPQ_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  for (size_t i = 0; i < a->count; i++) {
    switch (a->dtype) {
    case LPQ_DT_I64: l[i] = ((const int64_t *)a->data)[i]; break;
    case LPQ_DT_I32: l[i] = ((const int32_t *)a->data)[i]; break;
    case LPQ_DT_U8: l[i] = ((const uint8_t *)a->data)[i]; break;
    case LPQ_DT_I8: l[i] = ((const int8_t *)a->data)[i]; break;
    default:
      free(l);
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: labels must be integers (int64, int32 or uint8), "
                      "not %s", path, lpq_dtype_name(a->dtype));
      goto done;
    }
    if (l[i] < 0) {
      free(l);
      rc = lpq_errorf(err, LPQ_EFORMAT, "%s: label %zu is negative", path, i);
      goto done;
    }
  }
  *labels = l;
  *count = a->count;
done:
  lpq_array_free(&a);
  return rc;
}

int tool_check_input_fits(const lpq_graph_t *g, const lpq_array_t *x, const char *path,
                          lpq_error_t *err) {
  lpq_tensor_info_t in;
  if (lpq_graph_num_inputs(g) != 1 || lpq_graph_input(g, 0, &in) != 0)
    return lpq_errorf(err, LPQ_EUNSUP, "the model must have exactly one input");
  int ok = x->ndim == in.ndim && x->ndim >= 1;
  for (int i = 1; ok && i < in.ndim; i++)
    ok = x->shape[i] == in.shape[i];
  if (!ok) {
    char a[96], b[96];
    return lpq_errorf(err, LPQ_EFORMAT, "%s: data of shape %s does not fit the model's input "
                      "'%s' of shape %s (any batch)", path,
                      lpq_shape_str(x->ndim, x->shape, a, sizeof a), in.name,
                      lpq_shape_str(in.ndim, in.shape, b, sizeof b));
  }
  return 0;
}
