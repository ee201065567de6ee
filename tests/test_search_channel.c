/* tests/test_search_channel.c: the weights' per-channel sf in the genome (weight_sf tensor,
** channel, search): which genomes each mode allows, the flag through mutation, crossover,
** hashing, the saved state and the config text, and that the search finds per-channel scales
** where they pay. The objective is synthetic: each layer's weights are channels of very
** different scales, so one sf per channel (emulated here by the channels' own sf) fits better. */
#include "coordinator/search/search.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LAYERS 6
#define CHANNELS 8
#define PER 64

typedef struct synthetic_t {
  float weight[LAYERS][CHANNELS * PER];
  int channel_sf[LAYERS][CHANNELS]; /* each channel's own sf */
  lpq_layer_spec_t spec[LAYERS];
} synthetic_t;

static void synthetic_init(synthetic_t *sy) {
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 11);
  memset(sy, 0, sizeof *sy);
  for (int l = 0; l < LAYERS; l++) {
    for (int c = 0; c < CHANNELS; c++) {
      double scale = pow(2.0, -(c % 5)); /* channels 16x apart */
      sy->channel_sf[l][c] = c % 5;
      for (int i = 0; i < PER; i++)
        sy->weight[l][c * PER + i] = (float)(scale * (2.0 * lpq_rng_uniform(&rng) - 1.0));
    }
    sy->spec[l].weight_sf_seed = 2; /* the tensor's centre */
    sy->spec[l].act_sf_seed = 0;
  }
}

/* Relative squared error of the layer's weights under its genome format: per channel, the
** format's sf is the channel's own plus the gene's offset; per tensor, the gene's sf. */
static double layer_error(const synthetic_t *sy, size_t l, const lpq_layer_formats_t *g) {
  double e = 0, s = 0;
  for (int c = 0; c < CHANNELS; c++) {
    lp_format_t f = g->weight;
    if (g->weight_per_channel)
      f.sf = sy->channel_sf[l][c] + g->weight.sf;
    if (f.sf < LP_SF_MIN || f.sf > LP_SF_MAX)
      return 1.0;
    lp_quantizer_t *q = lp_quantizer_new(&f, NULL);
    cr_assert_not_null(q);
    float out[PER];
    cr_assert_eq(lp_quantize_f32(q, sy->weight[l] + c * PER, out, PER, NULL), 0);
    lp_quantizer_free(&q);
    for (int i = 0; i < PER; i++) {
      double x = sy->weight[l][c * PER + i];
      e += (out[i] - x) * (out[i] - x);
      s += x * x;
    }
  }
  return e / s;
}

static int score(void *ctx, size_t thread, const lpq_layer_formats_t *g, size_t layers,
                 lpq_eval_result_t *out) {
  (void)thread;
  double co = 0;
  for (size_t l = 0; l < layers; l++)
    co += layer_error(ctx, l, &g[l]);
  out->l_co = co;
  out->l_cr = lpq_genome_weight_bits(g, layers, NULL) / 32.0;
  return 0;
}

static lpq_search_space_t space_of(synthetic_t *sy, int weight_sf) {
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = sy->spec;
  sp.quantize_acts = 0;
  sp.weight_sf = weight_sf;
  return sp;
}

static lpq_search_t *run(synthetic_t *sy, int weight_sf, size_t evaluations, size_t threads) {
  lpq_search_space_t sp = space_of(sy, weight_sf);
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.max_generations = 0;
  set.max_evaluations = evaluations;
  set.population = 16;
  set.parents = 8;
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(threads, score, sy, &err);
  cr_assert_not_null(ev, "%s", err.msg);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  lpq_thread_evaluator_free(&ev);
  return s;
}

/* Counts the archive's per-channel layers; checks every genome against the space. */
static size_t count_channel_layers(const lpq_search_t *s, const lpq_search_space_t *sp,
                                   size_t *layers) {
  lpq_search_space_t resolved;
  cr_assert_eq(lpq_search_space_resolve(sp, &resolved, NULL), 0);
  size_t ch = 0;
  *layers = 0;
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    cr_assert_eq(lpq_search_archive_get(s, i, &r), 0);
    lpq_error_t err = {0};
    cr_assert_eq(lpq_genome_check(&resolved, r.genome, &err), 0, "record %zu: %s", i, err.msg);
    for (size_t l = 0; l < LAYERS; l++) {
      ch += r.genome[l].weight_per_channel;
      (*layers)++;
    }
  }
  return ch;
}

Test(search_channel, each_mode_allows_its_own_genomes) {
  static synthetic_t sy;
  synthetic_init(&sy);
  size_t layers;
  lpq_search_t *t = run(&sy, LPQ_SF_TENSOR, 200, 2);
  lpq_search_space_t sp = space_of(&sy, LPQ_SF_TENSOR);
  cr_assert_eq(count_channel_layers(t, &sp, &layers), 0);
  lpq_search_t *c = run(&sy, LPQ_SF_CHANNEL, 200, 2);
  sp = space_of(&sy, LPQ_SF_CHANNEL);
  cr_assert_eq(count_channel_layers(c, &sp, &layers), layers, "a per-tensor layer in channel mode");
  /* a per-channel genome is outside a per-tensor space, and the other way round */
  lpq_search_record_t r;
  lpq_search_archive_get(c, 0, &r);
  lpq_search_space_t tensor_space = space_of(&sy, LPQ_SF_TENSOR), resolved;
  lpq_search_space_resolve(&tensor_space, &resolved, NULL);
  lpq_error_t err = {0};
  cr_assert_eq(lpq_genome_check(&resolved, r.genome, &err), LPQ_EINVAL);
  cr_assert(strstr(err.msg, "per channel") != NULL, "%s", err.msg);
  lpq_search_free(&t);
  lpq_search_free(&c);
}

static double best_at_4_bits(const lpq_search_t *s) {
  double best = INFINITY;
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    if (r.result.l_cr <= 4.0 / 32)
      best = fmin(best, r.result.l_co);
  }
  return best;
}

Test(search_channel, search_mode_finds_per_channel_where_it_pays) {
  static synthetic_t sy;
  synthetic_init(&sy);
  lpq_search_space_t sp = space_of(&sy, LPQ_SF_SEARCH);
  lpq_search_t *s = run(&sy, LPQ_SF_SEARCH, 600, 2);
  size_t layers, ch = count_channel_layers(s, &sp, &layers);
  cr_assert(ch > 0 && ch < layers, "search mode tried only one kind (%zu of %zu)", ch, layers);
  /* at 4 mean bits or less, where the scale matters, the best genome (lowest L_CO) uses
  ** per-channel scales on most layers */
  double best = INFINITY;
  size_t best_ch = 0;
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    if (r.result.l_cr <= 4.0 / 32 && r.result.l_co < best) {
      best = r.result.l_co;
      best_ch = 0;
      for (size_t l = 0; l < LAYERS; l++)
        best_ch += r.genome[l].weight_per_channel;
    }
  }
  cr_assert_geq(best_ch, LAYERS - 1, "the best genome has %zu per-channel layers", best_ch);
  /* per channel pays on this objective: the channel-mode search beats the per-tensor one */
  lpq_search_t *t = run(&sy, LPQ_SF_TENSOR, 600, 2), *c = run(&sy, LPQ_SF_CHANNEL, 600, 2);
  double best_t = best_at_4_bits(t), best_c = best_at_4_bits(c);
  cr_log_info("best L_CO at <= 4 bits: per tensor %.4f, per channel %.4f, search %.4f", best_t,
              best_c, best);
  cr_assert_lt(best_c, best_t, "at <= 4 bits, per channel %.4f not below per tensor %.4f",
               best_c, best_t);
  lpq_search_free(&c);
  lpq_search_free(&s);
  lpq_search_free(&t);
}

Test(search_channel, same_run_whatever_the_threads_and_state_round_trips) {
  static synthetic_t sy;
  synthetic_init(&sy);
  lpq_search_t *a = run(&sy, LPQ_SF_SEARCH, 160, 1), *b = run(&sy, LPQ_SF_SEARCH, 160, 3);
  cr_assert_eq(lpq_search_archive_count(a), lpq_search_archive_count(b));
  for (size_t i = 0; i < lpq_search_archive_count(a); i++) {
    lpq_search_record_t ra, rb;
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(b, i, &rb);
    cr_assert_eq(ra.hash, rb.hash, "record %zu", i);
  }
  char *json = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_search_save(a, &json, &err), 0, "%s", err.msg);
  lpq_search_space_t sp = space_of(&sy, LPQ_SF_SEARCH);
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.max_generations = 0;
  set.max_evaluations = 160;
  set.population = 16;
  set.parents = 8;
  lpq_search_t *r = lpq_search_restore(&sp, &set, json, &err);
  cr_assert_not_null(r, "%s", err.msg);
  for (size_t i = 0; i < lpq_search_archive_count(a); i++) {
    lpq_search_record_t ra, rr;
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(r, i, &rr);
    cr_assert_eq(ra.hash, rr.hash, "restored record %zu", i);
    for (size_t l = 0; l < LAYERS; l++)
      cr_assert_eq(ra.genome[l].weight_per_channel, rr.genome[l].weight_per_channel);
  }
  /* the same state cannot be restored into a per-tensor space */
  lpq_search_space_t tsp = space_of(&sy, LPQ_SF_TENSOR);
  cr_assert_null(lpq_search_restore(&tsp, &set, json, &err));
  free(json);
  lpq_search_free(&a);
  lpq_search_free(&b);
  lpq_search_free(&r);
}

Test(search_channel, flag_hashes_and_prints) {
  lpq_layer_formats_t g = {{4, 1, 2, 1}, {8, 1, 3, 0}, 0}, h = g;
  h.weight_per_channel = 1;
  cr_assert_neq(lpq_genome_hash(&g, 1), lpq_genome_hash(&h, 1));
  lpq_numfmt_t w, a;
  char buf[LPQ_NUMFMT_TEXT_MAX];
  lpq_layer_formats_numfmt(&h, &w, &a);
  cr_assert_str_eq(lpq_numfmt_str(&w, buf, sizeof buf), "lp<4,1,2,auto_ch+1>");
  cr_assert(w.per_channel && w.auto_scale && !w.resolved && w.sf_offset == 1);
  lpq_layer_formats_numfmt(&g, &w, &a);
  cr_assert_str_eq(lpq_numfmt_str(&w, buf, sizeof buf), "lp<4,1,2,1>");
  cr_assert_str_eq(lpq_numfmt_str(&a, buf, sizeof buf), "lp<8,1,3,0>");
  /* what the text says parses back to the same format */
  lpq_numfmt_t back;
  lpq_layer_formats_numfmt(&h, &w, &a);
  cr_assert_eq(lpq_numfmt_parse(lpq_numfmt_str(&w, buf, sizeof buf), &back, NULL), 0);
  cr_assert(back.per_channel && back.sf_offset == 1 && back.p[0] == 4 && back.p[2] == 2);
}
