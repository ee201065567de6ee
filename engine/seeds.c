/* engine/seeds.c: statistics-driven starting points for the search: per quantizable layer, the
** sf that a mid-width LP format takes on the layer's weights and on its FP input activations
** over a calibration batch (DESIGN section 2; issue 4's "auto"). */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

#define SEED_SAMPLE 65536
#define SEED_FORMAT "lp<6,1,3,auto>"

typedef struct seed_pass_t {
  float **sample;
  size_t *count;
  lpq_error_t hook_err;
} seed_pass_t;

static int take_input(void *user, size_t layer, float *x, size_t n) {
  seed_pass_t *p = user;
  size_t stride = n > SEED_SAMPLE ? (n + SEED_SAMPLE - 1) / SEED_SAMPLE : 1, k = 0;
  float *s = malloc(((n + stride - 1) / stride + 1) * sizeof *s);
  if (!s)
    return lpq_errorf(&p->hook_err, LPQ_ENOMEM, "seeds: out of memory");
  for (size_t i = 0; i < n; i += stride)
    s[k++] = x[i];
  free(p->sample[layer]);
  p->sample[layer] = s;
  p->count[layer] = k;
  return 0;
}

static int calibrated_sf(const float *x, size_t n, int *sf, lpq_error_t *err) {
  lpq_numfmt_t f;
  lpq_numfmt_parse(SEED_FORMAT, &f, NULL);
  int rc = lpq_numfmt_calibrate(&f, x, n, err);
  if (rc == 0)
    *sf = f.p[3];
  return rc;
}

int lpq_graph_sf_seeds(const lpq_graph_t *g, const float *calib, int *weight_sf, int *act_sf,
                       lpq_error_t *err) {
  size_t nl = lpq_graph_num_layers(g);
  for (size_t i = 0; i < nl; i++) {
    const lpq_layer_t *L = lpq_graph_layer(g, i);
    int rc = calibrated_sf(L->weight, L->weight_count, &weight_sf[i], err);
    if (rc != 0)
      return lpq_error_prefix(err, "layer %zu (%s) weights: ", i, L->name);
  }
  if (!act_sf)
    return 0;
  seed_pass_t p = {calloc(nl + 1, sizeof(float *)), calloc(nl + 1, sizeof(size_t)), {0}};
  lpq_tensor_info_t out;
  lpq_exec_t *x = lpq_exec_new(g, err);
  float *y = NULL;
  int rc = 0;
  if (!p.sample || !p.count || !x || lpq_graph_output(g, 0, &out) != 0 ||
      !(y = malloc(out.count * sizeof *y))) {
    rc = x ? lpq_errorf(err, LPQ_ENOMEM, "seeds: out of memory") : (err ? err->code : LPQ_ENOMEM);
    goto done;
  }
  lpq_hooks_t h = {&p, NULL, take_input, NULL, NULL, NULL};
  rc = lpq_exec_run(x, calib, y, &h, err);
  if (rc != 0 && p.hook_err.code != 0 && err)
    *err = p.hook_err;
  for (size_t i = 0; rc == 0 && i < nl; i++) {
    rc = calibrated_sf(p.sample[i], p.count[i], &act_sf[i], err);
    if (rc != 0)
      lpq_error_prefix(err, "layer %zu input: ", i);
  }
done:
  for (size_t i = 0; p.sample && i < nl; i++)
    free(p.sample[i]);
  free(p.sample);
  free(p.count);
  free(y);
  lpq_exec_free(&x);
  return rc;
}
