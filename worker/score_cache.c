/* worker/score_cache.c: what the scorer keeps between candidates (DESIGN section 2: nothing that
** does not change between candidates is computed again): formats resolved on the calibration
** data, quantizers, quantized weights (qcache.c, byte-bounded), and the prefix cache of local
** contrastive terms (a fixed-size table). Every cached value equals, bit for bit, what
** computing it again gives (tests/test_score.c checks it against opts.no_cache). */
#include "worker/worker_internal.h"

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fmt_key(const lpq_numfmt_t *f, char *buf, size_t len) {
  char t[LPQ_NUMFMT_TEXT_MAX];
  lpq_numfmt_str(f, t, sizeof t);
  return snprintf(buf, len, "%s|%.17g", t, f->resolved ? f->scale : 0.0);
}

/* LP "auto" with an sf offset calibrates as "auto" and adds the offset (lp_calibrate.c): the
** search's offsets of one format share one calibration. */
static int lp_offset(const lpq_numfmt_t *f) {
  return f->family == LPQ_FAM_LP && f->auto_scale && !f->resolved && f->sf_offset != 0;
}

static void apply_offset(lpq_numfmt_t *r, int offset) {
  int sf = r->p[3] + offset;
  r->p[3] = sf < LP_SF_MIN ? LP_SF_MIN : sf > LP_SF_MAX ? LP_SF_MAX : sf;
  r->sf_offset = offset;
}

static int calibrate(lpq_scorer_t *s, size_t layer, char side, lpq_numfmt_t *r, lpq_error_t *err) {
  const lpq_layer_t *L = lpq_graph_layer(s->g, layer);
  int rc = side == 'w' ? lpq_numfmt_calibrate(r, L->weight, L->weight_count, err)
                       : lpq_numfmt_calibrate(r, s->ref[layer].in_sample, s->ref[layer].in_count,
                                              err);
  return rc != 0 ? lpq_error_prefix(err, "layer %zu (%s): ", layer, L->name) : 0;
}

int lpq__score_resolve(lpq_scorer_t *s, size_t layer, char side, const lpq_numfmt_t *f,
                       lpq_numfmt_t *out, lpq_error_t *err) {
  if (f->resolved || f->family == LPQ_FAM_FP32 || (side == 'w' && f->per_channel)) {
    *out = *f;
    return 0;
  }
  if (side == 'a' && f->per_channel)
    return lpq_errorf(err, LPQ_EINVAL, "layer %zu: per-channel formats apply to weights only",
                      layer);
  if (s->opts.no_cache) {
    *out = *f;
    return calibrate(s, layer, side, out, err);
  }
  if (lp_offset(f)) {
    lpq_numfmt_t base = *f;
    base.sf_offset = 0;
    int rc = lpq__score_resolve(s, layer, side, &base, out, err);
    if (rc == 0)
      apply_offset(out, f->sf_offset);
    return rc;
  }
  char key[128], fk[96];
  fmt_key(f, fk, sizeof fk);
  snprintf(key, sizeof key, "R|%c|%zu|%s", side, layer, fk);
  qentry_t *e = lpq__qcache_get(&s->cache, key);
  if (!e) {
    lpq_numfmt_t r = *f;
    int rc = calibrate(s, layer, side, &r, err);
    if (rc != 0)
      return rc;
    qentry_t *n = lpq__qentry_new(key);
    if (!n)
      return lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    n->fmt = r;
    n->bytes = sizeof *n;
    e = lpq__qcache_put(&s->cache, n);
  }
  *out = e->fmt;
  lpq__qcache_release(&s->cache, e);
  return 0;
}

qentry_t *lpq__score_quantizer(lpq_scorer_t *s, const lpq_numfmt_t *f, lpq_error_t *err) {
  char key[128], fk[96];
  fmt_key(f, fk, sizeof fk);
  snprintf(key, sizeof key, "Q|%s", fk);
  qentry_t *e = lpq__qcache_get(&s->cache, key);
  if (e)
    return e;
  qentry_t *n = lpq__qentry_new(key);
  if (!n || !(n->q = lpq_numfmt_quantizer(f, err))) {
    free(n);
    if (!n)
      lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    return NULL;
  }
  n->bytes = lp_quantizer_bytes(n->q);
  return lpq__qcache_put(&s->cache, n);
}

/* Quantizes count values of src with resolved format f into dst. */
static int quantize_with(lpq_scorer_t *s, const lpq_numfmt_t *f, const float *src, float *dst,
                         size_t count, lpq_error_t *err) {
  qentry_t *q = lpq__score_quantizer(s, f, err);
  if (!q)
    return err ? err->code : LPQ_ENOMEM;
  int rc = lp_quantize_f32(q->q, src, dst, count, err);
  lpq__qcache_release(&s->cache, q);
  return rc;
}

/* The LP "auto" centres of a layer's weight channels (they depend on the weights alone):
** computed once, then every LP auto_ch format of the layer starts its sf search from them. */
static qentry_t *layer_centres(lpq_scorer_t *s, size_t layer, lpq_error_t *err) {
  char key[32];
  snprintf(key, sizeof key, "K|%zu", layer);
  qentry_t *e = lpq__qcache_get(&s->cache, key);
  if (e)
    return e;
  const lpq_layer_t *L = lpq_graph_layer(s->g, layer);
  const size_t channels = (size_t)L->weight_shape[0], per = L->weight_count / channels;
  qentry_t *n = lpq__qentry_new(key);
  if (!n || !(n->idata = malloc(channels * sizeof *n->idata))) {
    free(n);
    lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    return NULL;
  }
  if (lpq_numfmt_lp_centres(L->weight, channels, per, n->idata, err) != 0) {
    free(n->idata);
    free(n);
    return NULL;
  }
  n->bytes = sizeof *n + channels * sizeof *n->idata;
  return lpq__qcache_put(&s->cache, n);
}

/* Each channel's format of a per-channel weight format (fc: channels entries). LP auto_ch with
** an sf offset: each channel's sf calibrated once without it (cached), the offset added. */
static int channel_formats(lpq_scorer_t *s, size_t layer, const lpq_numfmt_t *f,
                           lpq_numfmt_t *fc, lpq_error_t *err) {
  const lpq_layer_t *L = lpq_graph_layer(s->g, layer);
  const size_t channels = (size_t)L->weight_shape[0], per = L->weight_count / channels;
  if (s->opts.no_cache || f->family != LPQ_FAM_LP || !f->auto_scale)
    return lpq_numfmt_calibrate_channels(f, L->weight, channels, per, fc, err);
  lpq_numfmt_t base = *f;
  base.sf_offset = 0;
  char key[128], fk[96];
  fmt_key(&base, fk, sizeof fk);
  snprintf(key, sizeof key, "C|%zu|%s", layer, fk);
  qentry_t *e = lpq__qcache_get(&s->cache, key);
  if (!e) {
    qentry_t *n = lpq__qentry_new(key);
    if (!n || !(n->data = malloc(channels * sizeof *n->data))) {
      free(n);
      return lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    }
    qentry_t *k = layer_centres(s, layer, err);
    int rc = k ? lpq_numfmt_calibrate_channels_at(&base, L->weight, channels, per, k->idata,
                                                  fc, err)
               : (err ? err->code : LPQ_ENOMEM);
    lpq__qcache_release(&s->cache, k);
    if (rc != 0) {
      free(n->data);
      free(n);
      return rc;
    }
    for (size_t c = 0; c < channels; c++)
      n->data[c] = (float)fc[c].p[3]; /* -64..64: exact */
    n->bytes = sizeof *n + channels * sizeof *n->data;
    e = lpq__qcache_put(&s->cache, n);
  }
  for (size_t c = 0; c < channels; c++) {
    fc[c] = *f;
    fc[c].per_channel = 0;
    fc[c].resolved = 1;
    fc[c].p[3] = (int)e->data[c];
    apply_offset(&fc[c], f->sf_offset);
  }
  lpq__qcache_release(&s->cache, e);
  return 0;
}

qentry_t *lpq__score_weights(lpq_scorer_t *s, size_t layer, const lpq_numfmt_t *f,
                             lpq_error_t *err) {
  char key[128], fk[96];
  fmt_key(f, fk, sizeof fk);
  snprintf(key, sizeof key, "W|%zu|%s", layer, fk);
  qentry_t *e = s->opts.no_cache ? NULL : lpq__qcache_get(&s->cache, key);
  if (e)
    return e;
  const lpq_layer_t *L = lpq_graph_layer(s->g, layer);
  const size_t channels = (size_t)L->weight_shape[0], per = L->weight_count / channels;
  const size_t floats = L->weight_count + (s->opts.bias_correction ? channels : 0);
  qentry_t *n = lpq__qentry_new(key);
  if (!n || !(n->data = malloc(floats * sizeof *n->data))) {
    free(n);
    lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory for layer %zu weights", layer);
    return NULL;
  }
  n->bytes = floats * sizeof *n->data;
  int rc = 0;
  if (f->per_channel) {
    lpq_numfmt_t *fc = malloc(channels * sizeof *fc);
    rc = fc ? channel_formats(s, layer, f, fc, err)
            : lpq_errorf(err, LPQ_ENOMEM, "scorer: out of memory");
    for (size_t c = 0; c < channels && rc == 0; c++)
      rc = quantize_with(s, &fc[c], L->weight + c * per, n->data + c * per, per, err);
    free(fc);
  } else {
    rc = quantize_with(s, f, L->weight, n->data, L->weight_count, err);
  }
  if (rc == 0 && s->opts.bias_correction)
    lpq__bias_shift(L, n->data, s->ref[layer].in_mean, n->data + L->weight_count);
  if (rc != 0) {
    lpq_error_prefix(err, "layer %zu (%s) weights: ", layer, L->name);
    free(n->data);
    free(n);
    return NULL;
  }
  if (s->opts.no_cache) {
    n->refs = 1;
    return n;
  }
  return lpq__qcache_put(&s->cache, n);
}

void lpq__score_weights_release(lpq_scorer_t *s, qentry_t *e) {
  if (!e)
    return;
  if (s->opts.no_cache) {
    free(e->data);
    free(e);
  } else {
    lpq__qcache_release(&s->cache, e);
  }
}

/* ---- the prefix cache of local terms ---- */

#define PREFIX_WAYS 4

int lpq__prefix_init(lpq__prefix_cache_t *c, size_t bytes) {
  memset(c, 0, sizeof *c);
  c->nsets = bytes / (PREFIX_WAYS * sizeof *c->slots);
  if (c->nsets == 0)
    return 0; /* smaller than one set: no cache (the bound holds) */
  if (!(c->slots = calloc(c->nsets * PREFIX_WAYS, sizeof *c->slots)))
    return LPQ_ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  return 0;
}

void lpq__prefix_destroy(lpq__prefix_cache_t *c) {
  if (!c->slots)
    return;
  free(c->slots);
  c->slots = NULL;
  pthread_mutex_destroy(&c->mu);
}

void lpq__prefix_start(uint64_t h[2]) {
  h[0] = 1469598103934665603ull; /* FNV-1a's offset basis */
  h[1] = 0x9e3779b97f4a7c15ull;
}

/* Two independent 64-bit hashes of the same bytes: FNV-1a and a multiply-xorshift mix. */
static void hash_text(uint64_t h[2], const char *t) {
  for (; *t; t++) {
    h[0] = (h[0] ^ (unsigned char)*t) * 1099511628211ull;
    h[1] = (h[1] + (unsigned char)*t) * 0xbf58476d1ce4e5b9ull;
    h[1] ^= h[1] >> 31;
  }
  h[0] = (h[0] ^ 0xff) * 1099511628211ull; /* a separator: "ab"+"c" differs from "a"+"bc" */
  h[1] = (h[1] + 0xff) * 0x94d049bb133111ebull;
  h[1] ^= h[1] >> 29;
}

void lpq__prefix_extend(uint64_t h[2], const lpq_numfmt_t *w, const lpq_numfmt_t *a) {
  char k[128];
  fmt_key(w, k, sizeof k);
  hash_text(h, k);
  fmt_key(a, k, sizeof k);
  hash_text(h, k);
}

static lpq__prefix_slot_t *set_of(lpq__prefix_cache_t *c, const uint64_t h[2]) {
  return c->slots + (h[0] % c->nsets) * PREFIX_WAYS;
}

int lpq__prefix_get(lpq__prefix_cache_t *c, const uint64_t h[2], double *local) {
  int found = 0;
  pthread_mutex_lock(&c->mu);
  lpq__prefix_slot_t *set = set_of(c, h);
  for (int i = 0; i < PREFIX_WAYS && !found; i++)
    if (set[i].h1 == h[0] && set[i].h2 == h[1] && (h[0] | h[1])) {
      *local = set[i].local;
      set[i].last_use = ++c->clock;
      found = 1;
    }
  if (found)
    c->hits++;
  else
    c->misses++;
  pthread_mutex_unlock(&c->mu);
  return found;
}

void lpq__prefix_put(lpq__prefix_cache_t *c, const uint64_t h[2], double local) {
  pthread_mutex_lock(&c->mu);
  lpq__prefix_slot_t *set = set_of(c, h), *victim = &set[0];
  for (int i = 0; i < PREFIX_WAYS; i++) {
    if (set[i].h1 == h[0] && set[i].h2 == h[1]) { /* another thread put it first */
      victim = &set[i];
      break;
    }
    if (set[i].last_use < victim->last_use)
      victim = &set[i];
  }
  victim->h1 = h[0];
  victim->h2 = h[1];
  victim->local = local;
  victim->last_use = ++c->clock;
  pthread_mutex_unlock(&c->mu);
}

void lpq_scorer_stats(lpq_scorer_t *s, lpq_scorer_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (s->prefix.slots) {
    pthread_mutex_lock(&s->prefix.mu);
    st->prefix_hits = s->prefix.hits;
    st->prefix_misses = s->prefix.misses;
    st->prefix_bytes = s->prefix.nsets * PREFIX_WAYS * sizeof *s->prefix.slots;
    pthread_mutex_unlock(&s->prefix.mu);
  }
  pthread_mutex_lock(&s->cache.mu);
  st->cache_bytes = s->cache.bytes;
  pthread_mutex_unlock(&s->cache.mu);
  st->ncuts = s->ncuts;
  st->local_rows = atomic_load(&s->local_rows);
  st->local = s->opts.local;
  for (size_t l = 0; l < s->nlayers; l++)
    st->local_dims += s->ref[l].rdim;
  if (s->ncuts) {
    pthread_mutex_lock(&s->cuts.mu);
    st->cut_resumes = s->cut_resumes;
    st->cut_saves = s->cut_saves;
    st->cut_reuses = s->cut_reuses;
    st->cut_layers_skipped = s->cut_layers_skipped;
    st->cut_bytes = s->cuts.bytes;
    pthread_mutex_unlock(&s->cuts.mu);
  }
}

int lpq__score_check_args(const lpq_scorer_t *s, const lpq_numfmt_t *w, const lpq_numfmt_t *a,
                          lpq_error_t *err) {
  if (!s || (s->nlayers && (!w || !a)))
    return lpq_errorf(err, LPQ_EINVAL, "scorer: NULL argument");
  for (size_t l = 0; l < s->nlayers; l++)
    if ((unsigned)w[l].family >= LPQ_FAM_COUNT || (unsigned)a[l].family >= LPQ_FAM_COUNT)
      return lpq_errorf(err, LPQ_EINVAL, "scorer: layer %zu has an invalid format", l);
  return 0;
}
