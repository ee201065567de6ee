/* coordinator/search/genome.c: the LP genome: its space (bit, exponent, regime and scale
** ranges, pinned layers), random genomes, block crossover and mutation, the stable hash. */
#include "coordinator/search/search_internal.h"

#include <string.h>

void lpq_search_space_default(lpq_search_space_t *space) {
  lpq_job_settings_t js; /* a job's defaults are the one source (common/job.c) */
  lpq_job_settings_default(&js);
  memset(space, 0, sizeof *space);
  space->n_min = js.n_min;
  space->n_max = js.n_max;
  space->act_n_min = js.act_n_min;
  space->act_n_max = js.act_n_max;
  space->es_min = js.es_min;
  space->es_max = js.es_max;
  space->sf_window = js.sf_window;
  space->quantize_acts = !js.weight_only;
  space->weight_sf = js.weight_sf;
}

static int check_pinned(const lp_format_t *f, size_t layer, const char *which,
                        lpq_error_t *err) {
  int rc = lp_format_validate(f, err);
  if (rc)
    lpq_error_prefix(err, "search space: layer %zu pinned %s format: ", layer, which);
  return rc;
}

int lpq_search_space_resolve(const lpq_search_space_t *space, lpq_search_space_t *out,
                             lpq_error_t *err) {
  if (!space || !out)
    return lpq_errorf(err, LPQ_EINVAL, "search space: missing");
  lpq_search_space_t sp = *space;
  if (sp.layer_count == 0 || !sp.layers)
    return lpq_errorf(err, LPQ_EINVAL, "search space: no layers");
  if (sp.act_n_min == 0 && sp.act_n_max == 0) {
    sp.act_n_min = sp.n_min;
    sp.act_n_max = sp.n_max;
  }
  if (sp.n_min < LP_N_MIN || sp.n_max > LP_N_MAX || sp.n_min > sp.n_max)
    return lpq_errorf(err, LPQ_EINVAL, "search space: weight bits %d..%d not within %d..%d",
                      sp.n_min, sp.n_max, LP_N_MIN, LP_N_MAX);
  if (sp.act_n_min < LP_N_MIN || sp.act_n_max > LP_N_MAX || sp.act_n_min > sp.act_n_max)
    return lpq_errorf(err, LPQ_EINVAL,
                      "search space: activation bits %d..%d not within %d..%d", sp.act_n_min,
                      sp.act_n_max, LP_N_MIN, LP_N_MAX);
  if (sp.es_min < 0 || sp.es_max > LP_ES_MAX || sp.es_min > sp.es_max)
    return lpq_errorf(err, LPQ_EINVAL, "search space: es %d..%d not within 0..%d", sp.es_min,
                      sp.es_max, LP_ES_MAX);
  if (sp.sf_window < 0 || sp.sf_window > LP_SF_MAX - LP_SF_MIN)
    return lpq_errorf(err, LPQ_EINVAL, "search space: sf window %d not within 0..%d",
                      sp.sf_window, LP_SF_MAX - LP_SF_MIN);
  sp.quantize_acts = sp.quantize_acts != 0;
  if (sp.weight_sf < LPQ_SF_TENSOR || sp.weight_sf > LPQ_SF_SEARCH)
    return lpq_errorf(err, LPQ_EINVAL, "search space: weight sf mode %d is not tensor (0), "
                      "channel (1) or search (2)", sp.weight_sf);
  for (size_t l = 0; l < sp.layer_count; l++) {
    const lpq_layer_spec_t *ls = &sp.layers[l];
    if (ls->weight_sf_seed < LP_SF_MIN || ls->weight_sf_seed > LP_SF_MAX ||
        ls->act_sf_seed < LP_SF_MIN || ls->act_sf_seed > LP_SF_MAX)
      return lpq_errorf(err, LPQ_EINVAL,
                        "search space: layer %zu sf seeds %d, %d not within %d..%d", l,
                        ls->weight_sf_seed, ls->act_sf_seed, LP_SF_MIN, LP_SF_MAX);
    if ((ls->weight_n_pin && (ls->weight_n_pin < LP_N_MIN || ls->weight_n_pin > LP_N_MAX)) ||
        (ls->act_n_pin && (ls->act_n_pin < LP_N_MIN || ls->act_n_pin > LP_N_MAX)))
      return lpq_errorf(err, LPQ_EINVAL, "search space: layer %zu pinned bits %d, %d not "
                        "within %d..%d", l, ls->weight_n_pin, ls->act_n_pin, LP_N_MIN, LP_N_MAX);
    if (ls->pinned) {
      int rc = check_pinned(&ls->formats.weight, l, "weight", err);
      if (rc == 0 && sp.quantize_acts)
        rc = check_pinned(&ls->formats.act, l, "activation", err);
      if (rc)
        return rc;
    }
  }
  *out = sp;
  return 0;
}

/* The allowed values of one format of one layer. */
typedef struct format_range_t {
  int n_min, n_max, es_min, es_max, sf_min, sf_max;
} format_range_t;

/* per_channel: the weights' sf is an offset on each channel's own, centred on 0. */
static format_range_t range_of(const lpq_search_space_t *sp, size_t layer, int is_act,
                               int per_channel) {
  const lpq_layer_spec_t *ls = &sp->layers[layer];
  int pin = is_act ? ls->act_n_pin : ls->weight_n_pin;
  int seed = is_act ? ls->act_sf_seed : per_channel ? 0 : ls->weight_sf_seed;
  format_range_t r;
  r.n_min = pin ? pin : is_act ? sp->act_n_min : sp->n_min;
  r.n_max = pin ? pin : is_act ? sp->act_n_max : sp->n_max;
  r.es_min = sp->es_min;
  r.es_max = sp->es_max;
  r.sf_min = seed - sp->sf_window < LP_SF_MIN ? LP_SF_MIN : seed - sp->sf_window;
  r.sf_max = seed + sp->sf_window > LP_SF_MAX ? LP_SF_MAX : seed + sp->sf_window;
  return r;
}

static lp_format_t random_format(lpq_rng_t *rng, format_range_t r) {
  lp_format_t f;
  f.n = lpq_rng_range(rng, r.n_min, r.n_max);
  f.es = lpq_rng_range(rng, r.es_min, r.es_max);
  f.rs = lpq_rng_range(rng, 1, f.n - 1);
  f.sf = lpq_rng_range(rng, r.sf_min, r.sf_max);
  return f;
}

void lpq_genome_random(const lpq_search_space_t *space, lpq_rng_t *rng,
                       lpq_layer_formats_t *genome) {
  static const lp_format_t none = {0, 0, 0, 0};
  for (size_t l = 0; l < space->layer_count; l++) {
    const lpq_layer_spec_t *ls = &space->layers[l];
    if (ls->pinned) {
      genome[l] = ls->formats;
    } else {
      /* per tensor draws nothing for the flag, so such searches keep their old sequences */
      int ch = space->weight_sf == LPQ_SF_CHANNEL ||
               (space->weight_sf == LPQ_SF_SEARCH && lpq_rng_below(rng, 2));
      genome[l].weight_per_channel = ch;
      genome[l].weight = random_format(rng, range_of(space, l, 0, ch));
      if (space->quantize_acts)
        genome[l].act = random_format(rng, range_of(space, l, 1, 0));
    }
    if (!space->quantize_acts)
      genome[l].act = none;
  }
}

/* The format a layer takes at `bits` in a seeded genome: its statistics seed for sf, es = 1 and
** rs = 3 where the range allows (the LP shapes that keep 8-bit networks near FP), clamped. */
static lp_format_t seeded_format(format_range_t r, int bits, int seed) {
  lp_format_t f;
  f.n = bits < r.n_min ? r.n_min : bits > r.n_max ? r.n_max : bits;
  f.es = 1 < r.es_min ? r.es_min : 1 > r.es_max ? r.es_max : 1;
  f.rs = f.n - 1 < 3 ? f.n - 1 : 3;
  f.sf = seed < r.sf_min ? r.sf_min : seed > r.sf_max ? r.sf_max : seed;
  return f;
}

/* Every free layer's weights at bits[l] (or `uniform` bits when bits is NULL) in LP shape
** `shape` (lpq__genome_allocated), activations at act_bits with es 1, rs 3; per-channel scales
** wherever the space allows them (they fit better), else each layer's sf seed. */
static void build_genome(const lpq_search_space_t *space, const int *bits, int uniform,
                         int shape, int act_bits, lpq_layer_formats_t *genome) {
  static const lp_format_t none = {0, 0, 0, 0};
  for (size_t l = 0; l < space->layer_count; l++) {
    const lpq_layer_spec_t *ls = &space->layers[l];
    if (ls->pinned) {
      genome[l] = ls->formats;
      continue;
    }
    int ch = space->weight_sf != LPQ_SF_TENSOR;
    format_range_t r = range_of(space, l, 0, ch);
    lp_format_t f = seeded_format(r, bits ? bits[l] : uniform, ch ? 0 : ls->weight_sf_seed);
    if (shape != 2) { /* seeded_format's own is shape 2 */
      int es = 0, rs = f.n - 1; /* shape 1: no regime cap, es 0 */
      if (shape == 0)
        lp_weight_shape(f.n, &es, &rs);
      f.es = es < r.es_min ? r.es_min : es > r.es_max ? r.es_max : es;
      f.rs = rs < 1 ? 1 : rs > f.n - 1 ? f.n - 1 : rs;
    }
    genome[l].weight = f;
    genome[l].weight_per_channel = ch;
    genome[l].act = space->quantize_acts
                        ? seeded_format(range_of(space, l, 1, 0), act_bits, ls->act_sf_seed)
                        : none;
  }
}

void lpq_genome_seeded(const lpq_search_space_t *space, int weight_bits, int act_bits,
                       lpq_layer_formats_t *genome) {
  build_genome(space, NULL, weight_bits, 2, act_bits, genome);
}

void lpq__genome_allocated(const lpq_search_space_t *space, const int *bits, int shape,
                           lpq_layer_formats_t *genome) {
  build_genome(space, bits, 0, shape, space->act_n_max, genome);
}

static int format_in_range(const lp_format_t *f, format_range_t r) {
  return f->n >= r.n_min && f->n <= r.n_max && f->es >= r.es_min && f->es <= r.es_max &&
         f->rs >= 1 && f->rs <= f->n - 1 && f->sf >= r.sf_min && f->sf <= r.sf_max;
}

int lpq_genome_check(const lpq_search_space_t *space, const lpq_layer_formats_t *genome,
                     lpq_error_t *err) {
  for (size_t l = 0; l < space->layer_count; l++) {
    const lpq_layer_spec_t *ls = &space->layers[l];
    char buf[LP_TEXT_MAX];
    for (int is_act = 0; is_act < 2; is_act++) {
      const lp_format_t *f = is_act ? &genome[l].act : &genome[l].weight;
      const char *what = is_act ? "activation" : "weight";
      if (is_act && !space->quantize_acts) {
        if (f->n != 0 || f->es != 0 || f->rs != 0 || f->sf != 0)
          return lpq_errorf(err, LPQ_EINVAL, "genome: layer %zu has an activation format "
                            "in a weight-only search", l);
        continue;
      }
      const lp_format_t *pin = is_act ? &ls->formats.act : &ls->formats.weight;
      int ch = !is_act && genome[l].weight_per_channel;
      int ch_ok = ls->pinned ? ch == (!is_act && ls->formats.weight_per_channel)
                  : is_act   ? 1
                  : space->weight_sf == LPQ_SF_SEARCH ? (ch == 0 || ch == 1)
                             : ch == (space->weight_sf == LPQ_SF_CHANNEL);
      if (!ch_ok)
        return lpq_errorf(err, LPQ_EINVAL, "genome: layer %zu weight scale is per %s, which "
                          "the search space does not allow", l, ch ? "channel" : "tensor");
      int ok = ls->pinned ? memcmp(f, pin, sizeof *f) == 0
                          : format_in_range(f, range_of(space, l, is_act, ch));
      if (!ok)
        return lpq_errorf(err, LPQ_EINVAL, "genome: layer %zu %s format %s is outside the "
                          "search space%s", l, what, lp_format_str(f, buf, sizeof buf),
                          ls->pinned ? " (the layer is pinned)" : "");
    }
  }
  return 0;
}

uint64_t lpq__search_fnv1a(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t lpq__search_fnv1a_int(uint64_t h, int64_t v) {
  /* Little-endian bytes whatever the machine, so a hash means the same everywhere. */
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)v >> (8 * i));
  return lpq__search_fnv1a(h, b, sizeof b);
}

uint64_t lpq_genome_hash(const lpq_layer_formats_t *genome, size_t layer_count) {
  uint64_t h = lpq__search_fnv1a_int(SEARCH_FNV_OFFSET, (int64_t)layer_count);
  for (size_t l = 0; l < layer_count; l++) {
    const lp_format_t *f[2] = {&genome[l].weight, &genome[l].act};
    for (int k = 0; k < 2; k++) {
      h = lpq__search_fnv1a_int(h, f[k]->n);
      h = lpq__search_fnv1a_int(h, f[k]->es);
      h = lpq__search_fnv1a_int(h, f[k]->rs);
      h = lpq__search_fnv1a_int(h, f[k]->sf);
    }
    if (genome[l].weight_per_channel) /* per tensor hashes as genomes did before the flag */
      h = lpq__search_fnv1a_int(h, 0x63680000 + l);
  }
  return h;
}

double lpq_genome_weight_bits(const lpq_layer_formats_t *genome, size_t layer_count,
                              const double *weight_counts) {
  double bits = 0.0, total = 0.0;
  for (size_t l = 0; l < layer_count; l++) {
    double w = weight_counts ? weight_counts[l] : 1.0;
    bits += w * genome[l].weight.n;
    total += w;
  }
  return total > 0 ? bits / total : 0.0;
}

/* ---- variation ------------------------------------------------------------------------- */

static int layer_free(const lpq_search_space_t *sp, size_t l) { return !sp->layers[l].pinned; }

/* 1 when some field of a format with range r can take another value. */
static int format_mutable(format_range_t r) {
  return r.n_max > r.n_min || r.es_max > r.es_min || r.sf_max > r.sf_min || r.n_max > 2;
}

/* A step of +-1 (or +-2 when wide) that stays in [lo, hi]; v itself when the range is one. */
static int step_within(lpq_rng_t *rng, int v, int lo, int hi, int max_step) {
  if (hi <= lo)
    return lo;
  for (;;) {
    int d = lpq_rng_range(rng, 1, max_step) * (lpq_rng_below(rng, 2) ? 1 : -1);
    int w = v + d;
    if (w >= lo && w <= hi)
      return w;
  }
}

/* Changes one field of f (n, es, rs or sf) to another allowed value. A width step goes up with
** probability p_up when p_up >= 0 (sensitivity's lean), else either way evenly. */
static void mutate_format(lpq_rng_t *rng, format_range_t r, lp_format_t *f, double p_up) {
  if (!format_mutable(r))
    return;
  for (;;) {
    lp_format_t g = *f;
    switch (lpq_rng_below(rng, 4)) {
    case 0:
      if (p_up >= 0 && r.n_max > r.n_min) {
        int up = lpq_rng_uniform(rng) < p_up;
        g.n += (up && g.n < r.n_max) || g.n == r.n_min ? 1 : -1;
      } else {
        g.n = step_within(rng, g.n, r.n_min, r.n_max, 1);
      }
      if (g.rs > g.n - 1 || g.rs == f->n - 1) /* an uncapped regime stays uncapped */
        g.rs = g.n - 1;
      break;
    case 1:
      g.es = step_within(rng, g.es, r.es_min, r.es_max, 1);
      break;
    case 2:
      g.rs = step_within(rng, g.rs, 1, g.n - 1, 1);
      break;
    default:
      g.sf = step_within(rng, g.sf, r.sf_min, r.sf_max, 2);
      break;
    }
    if (memcmp(&g, f, sizeof g) != 0) {
      *f = g;
      return;
    }
  }
}

search_block_t lpq__genome_pick_block(const lpq_search_space_t *space, lpq_rng_t *rng,
                                 size_t block_max) {
  size_t L = space->layer_count, free_count = 0;
  for (size_t l = 0; l < L; l++)
    free_count += layer_free(space, l);
  size_t len = 1 + (size_t)lpq_rng_below(rng, block_max < L ? block_max : L);
  if (free_count == 0) {
    search_block_t b = {(size_t)lpq_rng_below(rng, L - len + 1), len};
    return b;
  }
  /* Anchor the block on a free layer, then place it uniformly among the starts that hold it. */
  size_t pick = (size_t)lpq_rng_below(rng, free_count), anchor = 0;
  for (size_t l = 0; l < L; l++)
    if (layer_free(space, l) && pick-- == 0) {
      anchor = l;
      break;
    }
  size_t lo = anchor + 1 >= len ? anchor + 1 - len : 0;
  size_t hi = anchor < L - len ? anchor : L - len;
  search_block_t b = {lo + (size_t)lpq_rng_below(rng, hi - lo + 1), len};
  return b;
}

/* 1 when format k (0 weight, 1 activation) of layer l can change. */
static int layer_format_mutable(const lpq_search_space_t *sp, size_t l, int k,
                                const lpq_layer_formats_t *g) {
  if (k == 0 && sp->weight_sf == LPQ_SF_SEARCH)
    return 1; /* its scale kind can flip */
  return format_mutable(range_of(sp, l, k, k ? 0 : g->weight_per_channel));
}

/* Changes format k of layer l: one field (mutate_format) or, where the search chooses the
** weights' scale per layer, its kind (one draw in five). A flip keeps the sf's meaning: an
** absolute sf s becomes the offset s - seed on the channels' own sf's, and back. */
static void mutate_layer(const lpq_search_space_t *sp, const double *lean, lpq_rng_t *rng,
                         size_t l, int k, lpq_layer_formats_t *g) {
  if (k) {
    mutate_format(rng, range_of(sp, l, 1, 0), &g->act, -1);
    return;
  }
  int ch = g->weight_per_channel;
  if (sp->weight_sf == LPQ_SF_SEARCH && lpq_rng_below(rng, 5) == 0) {
    int seed = sp->layers[l].weight_sf_seed, sf = ch ? g->weight.sf + seed : g->weight.sf - seed;
    format_range_t r = range_of(sp, l, 0, !ch);
    g->weight_per_channel = !ch;
    g->weight.sf = sf < r.sf_min ? r.sf_min : sf > r.sf_max ? r.sf_max : sf;
    return;
  }
  mutate_format(rng, range_of(sp, l, 0, ch), &g->weight, lean ? lean[l] : -1);
}

/* Mutates each free format of the block with probability rate, and one at least. */
static void mutate_block(const lpq_search_space_t *sp, const double *lean, lpq_rng_t *rng,
                         search_block_t block, double rate, lpq_layer_formats_t *g) {
  int kinds = sp->quantize_acts ? 2 : 1, changed = 0;
  size_t candidates = 0;
  for (size_t l = block.start; l < block.start + block.len; l++) {
    if (!layer_free(sp, l))
      continue;
    for (int k = 0; k < kinds; k++) {
      if (!layer_format_mutable(sp, l, k, &g[l]))
        continue;
      candidates++;
      if (lpq_rng_uniform(rng) < rate) {
        mutate_layer(sp, lean, rng, l, k, &g[l]);
        changed = 1;
      }
    }
  }
  if (changed || candidates == 0)
    return;
  size_t pick = (size_t)lpq_rng_below(rng, candidates);
  for (size_t l = block.start; l < block.start + block.len; l++) {
    if (!layer_free(sp, l))
      continue;
    for (int k = 0; k < kinds; k++) {
      if (layer_format_mutable(sp, l, k, &g[l]) && pick-- == 0) {
        mutate_layer(sp, lean, rng, l, k, &g[l]);
        return;
      }
    }
  }
}

void lpq__genome_cross_block(const lpq_search_space_t *space, const double *lean, lpq_rng_t *rng,
                        const lpq_layer_formats_t *a, const lpq_layer_formats_t *b,
                        search_block_t block, double rate, lpq_layer_formats_t *child) {
  memcpy(child, a, space->layer_count * sizeof *child);
  for (size_t l = block.start; l < block.start + block.len; l++) {
    if (!layer_free(space, l))
      continue;
    if (lpq_rng_below(rng, 2)) {
      child[l].weight = b[l].weight;
      child[l].weight_per_channel = b[l].weight_per_channel; /* the sf means what it meant */
    }
    if (lpq_rng_below(rng, 2))
      child[l].act = b[l].act;
  }
  mutate_block(space, lean, rng, block, rate, child);
}

void lpq__genome_sibling(const lpq_search_space_t *space, const double *lean, lpq_rng_t *rng,
                    const lpq_layer_formats_t *parent, const lpq_layer_formats_t *child,
                    search_block_t block, double rate, lpq_layer_formats_t *sibling) {
  memcpy(sibling, parent, space->layer_count * sizeof *sibling);
  memcpy(sibling + block.start, child + block.start, block.len * sizeof *sibling);
  mutate_block(space, lean, rng, block, rate, sibling);
}
