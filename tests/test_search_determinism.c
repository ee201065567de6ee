/* tests/test_search_determinism.c: a job's history depends on its seed alone: not on the
** number of evaluator threads, not on the order results arrive, not on being saved, freed and
** restored halfway. Also the stopping rules, the progress callback and failed evaluations. */
#include "coordinator/search/search.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAYERS 10

static lpq_layer_spec_t specs[LAYERS];

static lpq_search_space_t space(void) {
  for (int l = 0; l < LAYERS; l++) {
    specs[l] = (lpq_layer_spec_t){0};
    specs[l].weight_sf_seed = l % 3;
    specs[l].act_sf_seed = -(l % 2);
  }
  specs[0].weight_n_pin = specs[LAYERS - 1].weight_n_pin = 8;
  lpq_search_space_t sp;
  lpq_search_space_default(&sp);
  sp.layer_count = LAYERS;
  sp.layers = specs;
  return sp;
}

/* A cheap rugged objective: error falls with bits, depends on es, rs and sf, couples
** neighbouring layers; genomes whose hash is 0 mod 17 fail, as a crashed worker would. */
static int score(void *ctx, size_t thread, const lpq_layer_formats_t *g, size_t layers,
                 lpq_eval_result_t *out) {
  int jitter = ctx != NULL; /* sleep a little, differently per genome: shuffles completion */
  (void)thread;
  uint64_t h = lpq_genome_hash(g, layers);
  if (jitter) {
    struct timespec ts = {0, (long)(h % 200) * 1000};
    nanosleep(&ts, NULL);
  }
  if (h % 17 == 0)
    return LPQ_EIO;
  double co = 0.0, act_bits = 0.0;
  for (size_t l = 0; l < layers; l++) {
    const lp_format_t *w = &g[l].weight, *a = &g[l].act;
    co += pow(2.0, -w->n) * (1.0 + 0.3 * fabs(w->es - 1.5)) +
          0.01 * abs(w->sf - specs[l].weight_sf_seed);
    co += pow(2.0, -a->n) * (1.0 + 0.2 * abs(a->rs - a->n / 2)) +
          0.02 * abs(a->sf - specs[l].act_sf_seed);
    if (l + 1 < layers)
      co += 0.01 * sin((double)(w->n * g[l + 1].weight.n));
    act_bits += a->n;
  }
  out->l_co = co;
  out->l_cr = lpq_genome_weight_bits(g, layers, NULL) / 32.0;
  out->constraint[0] = act_bits / (double)layers - 6.0;
  return 0;
}

static lpq_search_settings_t settings(size_t generations) {
  lpq_search_settings_t set;
  lpq_search_settings_default(&set);
  set.seed = 2024;
  set.population = 24;
  set.siblings = 3;
  set.constraint_count = 1;
  set.max_generations = generations;
  return set;
}

static lpq_search_t *run_threads(const lpq_search_settings_t *set, size_t threads, int jitter) {
  lpq_search_space_t sp = space();
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(threads, score, jitter ? &err : NULL, &err);
  cr_assert_not_null(ev);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  lpq_thread_evaluator_free(&ev);
  return s;
}

static void assert_same_search(const lpq_search_t *a, const lpq_search_t *b) {
  size_t n = lpq_search_archive_count(a);
  cr_assert_eq(n, lpq_search_archive_count(b), "archives of %zu and %zu", n,
               lpq_search_archive_count(b));
  for (size_t i = 0; i < n; i++) {
    lpq_search_record_t ra, rb;
    lpq_search_archive_get(a, i, &ra);
    lpq_search_archive_get(b, i, &rb);
    cr_assert_eq(memcmp(ra.genome, rb.genome, LAYERS * sizeof *ra.genome), 0, "record %zu", i);
    cr_assert_eq(memcmp(&ra.result, &rb.result, sizeof ra.result), 0, "record %zu result", i);
    cr_assert_eq(ra.generation, rb.generation, "record %zu generation", i);
  }
  const size_t *pa, *pb;
  size_t na = lpq_search_population(a, &pa), nb = lpq_search_population(b, &pb);
  cr_assert_eq(na, nb);
  cr_assert_eq(memcmp(pa, pb, na * sizeof *pa), 0, "populations differ");
  const lpq_search_progress_t *ha, *hb;
  size_t ga = lpq_search_history(a, &ha), gb = lpq_search_history(b, &hb);
  cr_assert_eq(ga, gb);
  for (size_t i = 0; i < ga; i++) {
    lpq_search_progress_t x = ha[i], y = hb[i];
    x.elapsed_seconds = y.elapsed_seconds = 0; /* the only field that may differ */
    cr_assert_eq(memcmp(&x, &y, sizeof x), 0, "history entry %zu differs", i);
  }
  size_t *fa, *fb, ca, cb;
  cr_assert_eq(lpq_search_front(a, &fa, &ca, NULL), 0);
  cr_assert_eq(lpq_search_front(b, &fb, &cb, NULL), 0);
  cr_assert_eq(ca, cb);
  cr_assert_gt(ca, 0);
  cr_assert_eq(memcmp(fa, fb, ca * sizeof *fa), 0, "fronts differ");
  free(fa);
  free(fb);
}

/* The ask / tell / commit loop with results told in a shuffled order, some twice. */
static lpq_search_t *run_shuffled(const lpq_search_settings_t *set, uint64_t shuffle_seed) {
  lpq_search_space_t sp = space();
  lpq_error_t err = {0};
  lpq_search_t *s = lpq_search_new(&sp, set, &err);
  cr_assert_not_null(s, "%s", err.msg);
  lpq_rng_t rng;
  lpq_rng_seed(&rng, shuffle_seed);
  while (lpq_search_should_stop(s) == LPQ_STOP_NONE) {
    const lpq_layer_formats_t *g;
    size_t n;
    cr_assert_eq(lpq_search_ask(s, &g, &n, &err), 0, "%s", err.msg);
    size_t *order = malloc((n + 1) * sizeof *order);
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    for (size_t i = n; i > 1; i--) {
      size_t j = (size_t)lpq_rng_below(&rng, i), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
    if (n > 1) /* a commit before every result is in must be refused */
      cr_assert_eq(lpq_search_commit(s, &err), LPQ_ESTATE);
    for (size_t k = 0; k < n; k++) {
      size_t i = order[k];
      lpq_eval_result_t r = {0};
      int rc = score(NULL, 0, g + i * LAYERS, LAYERS, &r);
      if (rc)
        r.status = rc;
      cr_assert_eq(lpq_search_tell(s, i, &r, &err), 0, "%s", err.msg);
      if (k % 5 == 0) /* a result delivered twice (at-least-once delivery) */
        cr_assert_eq(lpq_search_tell(s, i, &r, &err), 0, "%s", err.msg);
    }
    free(order);
    cr_assert_eq(lpq_search_commit(s, &err), 0, "%s", err.msg);
  }
  return s;
}

Test(search_determinism, threads_and_arrival_order_do_not_matter) {
  lpq_search_settings_t set = settings(12);
  lpq_search_t *one = run_threads(&set, 1, 0);
  lpq_search_t *four = run_threads(&set, 4, 1);
  lpq_search_t *shuffled = run_shuffled(&set, 99);
  cr_assert_eq(lpq_search_generation(one), 13);
  assert_same_search(one, four);
  assert_same_search(one, shuffled);
  lpq_search_free(&one);
  lpq_search_free(&four);
  lpq_search_free(&shuffled);
}

Test(search_determinism, failed_genomes_are_kept_but_never_on_the_front) {
  lpq_search_settings_t set = settings(8);
  lpq_search_t *s = run_threads(&set, 2, 0);
  size_t failed = 0;
  for (size_t i = 0; i < lpq_search_archive_count(s); i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, i, &r);
    cr_assert_eq(r.result.status != 0, r.hash % 17 == 0, "record %zu", i);
    failed += r.result.status != 0;
  }
  cr_assert_gt(failed, 0, "the test objective should fail some genomes");
  const lpq_search_progress_t *h;
  size_t n = lpq_search_history(s, &h);
  cr_assert_eq(h[n - 1].failed, failed);
  size_t *front, count;
  cr_assert_eq(lpq_search_front(s, &front, &count, NULL), 0);
  for (size_t i = 0; i < count; i++) {
    lpq_search_record_t r;
    lpq_search_archive_get(s, front[i], &r);
    cr_assert(r.result.status == 0 && r.violation == 0, "front member %zu", front[i]);
    if (i > 0) { /* by increasing L_CO, so decreasing L_CR */
      lpq_search_record_t p;
      lpq_search_archive_get(s, front[i - 1], &p);
      cr_assert(p.result.l_co < r.result.l_co && p.result.l_cr > r.result.l_cr);
    }
  }
  free(front);
  lpq_search_free(&s);
}

static int count_progress(void *ctx, const lpq_search_progress_t *p) {
  size_t *calls = ctx;
  cr_assert_eq(p->generation, calls[1]++, "progress out of order");
  calls[0]++;
  return 0;
}

Test(search_determinism, save_restore_continues_identically) {
  lpq_search_settings_t set = settings(10);
  lpq_search_t *whole = run_threads(&set, 1, 0);

  lpq_search_settings_t half = settings(5);
  lpq_search_t *first = run_threads(&half, 2, 0);
  cr_assert_eq(lpq_search_should_stop(first), LPQ_STOP_GENERATIONS);
  char *json = NULL;
  lpq_error_t err = {0};
  cr_assert_eq(lpq_search_save(first, &json, &err), 0, "%s", err.msg);
  lpq_search_free(&first);

  lpq_search_space_t sp = space();
  size_t calls[2] = {0, 6};
  set.on_progress = count_progress;
  set.progress_ctx = calls;
  lpq_search_t *resumed = lpq_search_restore(&sp, &set, json, &err);
  cr_assert_not_null(resumed, "%s", err.msg);
  /* Saving the restored state gives the same JSON, but for the clock. */
  char *again = NULL;
  cr_assert_eq(lpq_search_save(resumed, &again, &err), 0);
  json_t *ja = json_loads(json, 0, NULL), *jb = json_loads(again, 0, NULL);
  cr_assert(ja && jb);
  json_object_del(ja, "elapsed_seconds");
  json_object_del(jb, "elapsed_seconds");
  cr_assert(json_equal(ja, jb), "the restored state saves differently");
  json_decref(ja);
  json_decref(jb);
  /* The restored search asks for the very batch the saved one asked for next. */
  lpq_search_t *peek = lpq_search_restore(&sp, &set, json, &err);
  cr_assert_not_null(peek, "%s", err.msg);
  const lpq_layer_formats_t *g1, *g2;
  size_t n1, n2;
  cr_assert_eq(lpq_search_ask(peek, &g1, &n1, &err), 0);
  cr_assert_eq(lpq_search_ask(resumed, &g2, &n2, &err), 0);
  cr_assert_eq(n1, n2);
  cr_assert_gt(n1, 0);
  cr_assert_eq(memcmp(g1, g2, n1 * LAYERS * sizeof *g1), 0, "restored searches ask differently");
  lpq_search_free(&peek);
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(3, score, NULL, &err);
  cr_assert_eq(lpq_search_run(resumed, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  cr_assert_eq(calls[0], 5, "%zu progress calls after the restore", calls[0]);
  assert_same_search(whole, resumed);

  /* A state is refused when it belongs to another job, is damaged, or is mid-generation. */
  lpq_search_settings_t other = settings(10);
  other.seed = 7;
  cr_assert_null(lpq_search_restore(&sp, &other, json, &err));
  cr_assert(strstr(err.msg, "fingerprint"), "%s", err.msg);
  json[strlen(json) / 2] = '\0';
  cr_assert_null(lpq_search_restore(&sp, &set, json, &err));
  cr_assert_eq(err.code, LPQ_EFORMAT, "%s", err.msg);
  const lpq_layer_formats_t *g;
  size_t n;
  cr_assert_eq(lpq_search_ask(resumed, &g, &n, &err), 0);
  char *mid = NULL;
  cr_assert_eq(lpq_search_save(resumed, &mid, &err), LPQ_ESTATE);
  cr_assert_null(mid);

  lpq_thread_evaluator_free(&ev);
  free(json);
  free(again);
  lpq_search_free(&whole);
  lpq_search_free(&resumed);
}

Test(search_determinism, restore_rejects_a_genome_outside_the_space) {
  lpq_search_settings_t set = settings(1);
  lpq_search_t *s = run_threads(&set, 1, 0);
  char *json = NULL;
  cr_assert_eq(lpq_search_save(s, &json, NULL), 0);
  /* Layer 0's weights are pinned at 8 bits: make the first record's 7. */
  char *at = strstr(json, "\"genome\":[[8,");
  cr_assert_not_null(at);
  at[11] = '7';
  lpq_search_space_t sp = space();
  lpq_error_t err = {0};
  cr_assert_null(lpq_search_restore(&sp, &set, json, &err));
  cr_assert(strstr(err.msg, "record 0") && strstr(err.msg, "layer 0"), "%s", err.msg);
  free(json);
  lpq_search_free(&s);
}

static int cancel_after_three(void *ctx, const lpq_search_progress_t *p) {
  (void)ctx;
  return p->generation >= 3;
}

/* Every result the same: nothing ever improves. */
static int flat_score(void *ctx, size_t thread, const lpq_layer_formats_t *g,
                      size_t layers, lpq_eval_result_t *out) {
  (void)ctx, (void)thread, (void)g, (void)layers;
  out->l_co = 1.0;
  out->l_cr = 0.5;
  return 0;
}

Test(search_determinism, stopping_rules) {
  lpq_search_space_t sp = space();
  lpq_error_t err = {0};
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(2, score, NULL, &err);
  lpq_thread_evaluator_t *flat = lpq_thread_evaluator_new(2, flat_score, NULL, &err);

  lpq_search_settings_t set = settings(0);
  set.max_evaluations = 100; /* 24 + 76: the third batch (96 genomes) is cut to fit */
  lpq_search_t *s = lpq_search_new(&sp, &set, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0, "%s", err.msg);
  cr_assert_eq(lpq_search_evaluations(s), 100);
  cr_assert_eq(lpq_search_should_stop(s), LPQ_STOP_EVALUATIONS);
  lpq_search_free(&s);

  set = settings(50);
  set.on_progress = cancel_after_three;
  s = lpq_search_new(&sp, &set, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0);
  cr_assert_eq(lpq_search_should_stop(s), LPQ_STOP_CANCELED);
  cr_assert_eq(lpq_search_generation(s), 4);
  lpq_search_free(&s);

  set = settings(50);
  set.patience = 4;
  s = lpq_search_new(&sp, &set, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(flat), &err), 0);
  cr_assert_eq(lpq_search_should_stop(s), LPQ_STOP_PATIENCE);
  cr_assert_eq(lpq_search_generation(s), 5, "stopped after %zu", lpq_search_generation(s));
  lpq_search_free(&s);

  set = settings(0);
  set.max_seconds = 0.05;
  s = lpq_search_new(&sp, &set, &err);
  cr_assert_eq(lpq_search_run(s, lpq_thread_evaluator_iface(ev), &err), 0);
  cr_assert_eq(lpq_search_should_stop(s), LPQ_STOP_TIME);
  const lpq_search_progress_t *h;
  size_t n = lpq_search_history(s, &h);
  cr_assert_geq(n, 1);
  cr_assert_gt(h[n - 1].elapsed_seconds, 0.0);
  lpq_search_free(&s);

  lpq_thread_evaluator_free(&ev);
  lpq_thread_evaluator_free(&flat);
}

static atomic_size_t threads_seen[8];

/* Counts calls per thread index; sleeps a little so that every thread gets work. */
static int count_threads(void *ctx, size_t thread, const lpq_layer_formats_t *g, size_t layers,
                         lpq_eval_result_t *out) {
  (void)ctx, (void)g, (void)layers;
  atomic_fetch_add(&threads_seen[thread < 8 ? thread : 7], 1);
  struct timespec ts = {0, 200000};
  nanosleep(&ts, NULL);
  out->l_co = out->l_cr = 1.0;
  return 0;
}

Test(search_determinism, evaluator_threads_are_numbered_from_zero) {
  lpq_search_space_t sp = space(), resolved;
  cr_assert_eq(lpq_search_space_resolve(&sp, &resolved, NULL), 0);
  enum { N = 64 };
  static lpq_layer_formats_t g[N * LAYERS];
  lpq_eval_result_t r[N];
  lpq_rng_t rng;
  lpq_rng_seed(&rng, 1);
  for (size_t i = 0; i < N; i++)
    lpq_genome_random(&resolved, &rng, g + i * LAYERS);
  lpq_error_t err = {0};
  lpq_thread_evaluator_t *ev = lpq_thread_evaluator_new(3, count_threads, NULL, &err);
  lpq_evaluator_t it = lpq_thread_evaluator_iface(ev);
  cr_assert_eq(it.evaluate(it.self, g, LAYERS, N, r, &err), 0, "%s", err.msg);
  size_t total = 0;
  for (int t = 0; t < 8; t++) {
    total += threads_seen[t];
    if (t >= 3)
      cr_assert_eq(threads_seen[t], 0, "thread index %d used by a 3-thread evaluator", t);
  }
  cr_assert_eq(total, N);
  cr_assert_gt(threads_seen[1] + threads_seen[2], 0, "only the caller worked");
  for (size_t i = 0; i < N; i++)
    cr_assert(r[i].status == 0 && r[i].l_co == 1.0);
  lpq_thread_evaluator_free(&ev);
}
