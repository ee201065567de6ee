/* coordinator/daemon/sensitivity.c: a job's per-layer sensitivity (issue 13, item 3), computed
** by the pool. The coordinator has no scorer (it never includes worker/), but every
** (layer, width) candidate is an ordinary genome: that layer's weights at b bits, every other
** layer and every activation fp32; plus the all-fp32 genome as the reference. When the job's
** settings ask for it ("sensitivity": true), these genomes are dispatched as tasks after the
** preparation and before the search exists; their results are not evaluations of the search
** (they go to the sensitivity table, in one transaction, not to evaluations), and the search
** starts once every one is back (failed cells are NULL). A job that already has its matrix
** stored (a restarted coordinator) does not compute it again. Also job.sensitivity. */
#include "coordinator/daemon/daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The weight format of layer l at `bits`: lp_weight_shape's es and rs; per channel (offset 0)
** when the job's weights may be, else per tensor at the layer's sf seed, as the search's. */
static int cell_per_channel(const job_t *j) { return j->js.weight_sf != LPQ_SF_TENSOR; }

static lp_format_t cell_format(const job_t *j, size_t layer, int bits) {
  lp_format_t f = {.n = bits, .sf = cell_per_channel(j) ? 0 : j->seeds[layer]};
  lp_weight_shape(bits, &f.es, &f.rs);
  return f;
}

static void sens_release(job_t *j) {
  free(j->sens_genomes);
  free(j->sens_refs);
  free(j->sens_l_co);
  free(j->sens_top1);
  j->sens_genomes = NULL;
  j->sens_refs = NULL;
  j->sens_l_co = j->sens_top1 = NULL;
  j->sens_count = j->sens_told = 0;
}

int sens_start(job_t *j) {
  daemon_t *d = j->d;
  lpq_error_t err;
  lpq_store_sensitivity_t have;
  int rc = lpq_store_sensitivity_get(d->store, j->id, &have, &err);
  if (rc == 0) {
    lpq_store_sensitivity_clear(&have);
    return 0; /* computed by an earlier run */
  }
  int lo, hi;
  lpq_sensitivity_widths(&j->js, &lo, &hi);
  const size_t widths = (size_t)(hi - lo + 1), count = 1 + j->nl * widths;
  j->sens_genomes = calloc(count * j->nl, sizeof *j->sens_genomes);
  j->sens_refs = calloc(count, sizeof *j->sens_refs);
  j->sens_l_co = malloc(count * sizeof *j->sens_l_co);
  j->sens_top1 = malloc(count * sizeof *j->sens_top1);
  if (!j->sens_genomes || !j->sens_refs || !j->sens_l_co || !j->sens_top1) {
    sens_release(j);
    return lpq_errorf(&err, LPQ_ENOMEM, "out of memory"), -1;
  }
  j->sens_count = count;
  j->sens_told = 0;
  /* genome 0: all fp32 (n = 0 everywhere); genome 1 + l * widths + c: layer l at lo + c */
  for (size_t l = 0; l < j->nl; l++)
    for (size_t c = 0; c < widths; c++) {
      lpq_layer_formats_t *cell = &j->sens_genomes[(1 + l * widths + c) * j->nl + l];
      cell->weight = cell_format(j, l, lo + (int)c);
      cell->weight_per_channel = cell_per_channel(j);
    }
  for (size_t i = 0; i < count; i++) {
    j->sens_l_co[i] = j->sens_top1[i] = NAN;
    lpq_task_t t;
    job_task(j, j->sens_genomes + i * j->nl, &t);
    j->sens_refs[i] = (task_ref_t){.job = j, .index = i, .sensitivity = 1};
    uint64_t task_id;
    if (lpq_dispatch_submit(d->pool, &t, &j->sens_refs[i], &task_id, &err) != 0) {
      lpq_dispatch_cancel_job(d->pool, j->id);
      sens_release(j);
      daemon_log(d, 0, "job %lld: sensitivity not computed: %s", (long long)j->id, err.msg);
      return 0; /* the search runs without it */
    }
  }
  daemon_log(d, 2, "job %lld: sensitivity: %zu genomes dispatched (%zu layers x %d..%d bits)",
             (long long)j->id, count, j->nl, lo, hi);
  return 1;
}

/* Every result is back: the matrix into the store, then the search. */
static void sens_finish(job_t *j) {
  daemon_t *d = j->d;
  int lo, hi;
  lpq_sensitivity_widths(&j->js, &lo, &hi);
  const size_t widths = (size_t)(hi - lo + 1), cells = j->nl * widths;
  lpq_store_sensitivity_t m = {.layers = j->nl, .bits_lo = lo, .bits_hi = hi,
                               .names = j->layer_names, .weights = j->weight_counts};
  m.delta_l_co = malloc(cells * sizeof *m.delta_l_co);
  m.top1 = malloc(cells * sizeof *m.top1);
  m.formats = calloc(cells, sizeof *m.formats);
  lpq_error_t err = {0};
  int rc = m.delta_l_co && m.top1 && m.formats ? 0 : lpq_errorf(&err, LPQ_ENOMEM, "out of memory");
  for (size_t k = 0; rc == 0 && k < cells; k++) {
    m.delta_l_co[k] = j->sens_l_co[1 + k] - j->sens_l_co[0]; /* NAN when either failed */
    m.top1[k] = j->sens_top1[1 + k];
    lpq_layer_formats_t cell = {cell_format(j, k / widths, lo + (int)(k % widths)),
                                {0, 0, 0, 0}, cell_per_channel(j)};
    lpq_numfmt_t wf, af;
    lpq_layer_formats_numfmt(&cell, &wf, &af);
    if ((m.formats[k] = malloc(LPQ_NUMFMT_TEXT_MAX)))
      lpq_numfmt_str(&wf, m.formats[k], LPQ_NUMFMT_TEXT_MAX);
  }
  if (rc == 0)
    rc = lpq_store_sensitivity_put(d->store, j->id, &m, &err);
  for (size_t k = 0; m.formats && k < cells; k++)
    free(m.formats[k]);
  free(m.formats);
  free(m.delta_l_co);
  free(m.top1);
  char msg[LPQ_STORE_TEXT_MAX + 64];
  if (rc == 0)
    snprintf(msg, sizeof msg, "sensitivity: %zu layers x %d..%d bits stored", j->nl, lo, hi);
  else
    snprintf(msg, sizeof msg, "sensitivity not stored: %s", err.msg);
  lpq_store_event_append(d->store, j->id, rc == 0 ? LPQ_STORE_INFO : LPQ_STORE_WARN, msg, NULL,
                         NULL);
  daemon_log(d, rc == 0 ? 2 : 1, "job %lld: %s", (long long)j->id, msg);
  sens_release(j);
  job_begin_search(j);
}

void sens_on_result(job_t *j, size_t index, const lpq_result_t *r) {
  if (index >= j->sens_count)
    return;
  if (r->status == 0) {
    j->sens_l_co[index] = r->l_co;
    j->sens_top1[index] = r->top1;
  }
  if (++j->sens_told == j->sens_count)
    sens_finish(j);
}

void sens_fill_specs(job_t *j, lpq_layer_spec_t *specs, lpq_search_settings_t *set) {
  lpq_store_sensitivity_t m;
  lpq_error_t err;
  if (lpq_store_sensitivity_get(j->d->store, j->id, &m, &err) != 0)
    return; /* none: the search runs without it */
  if (m.layers == j->nl && m.bits_lo >= LP_N_MIN && m.bits_hi <= LP_N_MAX)
    lpq_search_set_sensitivity(&j->js, j->nl, m.delta_l_co, m.bits_lo, m.bits_hi,
                               j->weight_counts, specs, set);
  lpq_store_sensitivity_clear(&m);
}

/* ---- job.sensitivity ---- */

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

void m_sensitivity(void *ctx, lpq_api_call_t *call, json_t *params) {
  daemon_t *d = ctx;
  int64_t id = (int64_t)json_integer_value(json_object_get(params, "job"));
  lpq_store_job_t sj;
  lpq_error_t err;
  if (lpq_store_job_get(d->store, id, &sj, &err) != 0) {
    reply_job_error(call, id, &err);
    return;
  }
  lpq_store_job_clear(&sj);
  lpq_store_sensitivity_t m;
  int rc = lpq_store_sensitivity_get(d->store, id, &m, &err);
  if (rc != 0) {
    job_t *j = job_find(d, id);
    if (rc == LPQ_ENOTFOUND)
      lpq_api_reply_error(call, LPQ_API_E_NOT_FOUND, NULL, "job %lld has no sensitivity %s",
                          (long long)id, j && (j->preparing || j->sens_count)
                                             ? "yet (it is being computed)"
                                             : "(submit it with settings.sensitivity = true)");
    else
      lpq_api_reply_error(call, LPQ_API_E_INTERNAL, NULL, "%s", err.msg);
    return;
  }
  const size_t widths = (size_t)(m.bits_hi - m.bits_lo + 1);
  json_t *bits = json_array(), *layers = json_array();
  for (int b = m.bits_lo; b <= m.bits_hi; b++)
    json_array_append_new(bits, json_integer(b));
  for (size_t l = 0; l < m.layers; l++) {
    json_t *dl = json_array(), *t = json_array(), *f = json_array();
    for (size_t c = 0; c < widths; c++) {
      size_t k = l * widths + c;
      json_array_append_new(dl, num_or_null(m.delta_l_co[k]));
      json_array_append_new(t, num_or_null(m.top1[k]));
      json_array_append_new(f, m.formats[k] ? json_string(m.formats[k]) : json_null());
    }
    json_array_append_new(layers, json_pack("{s:I, s:s, s:I, s:o, s:o, s:o}", "index",
                                            (json_int_t)l, "name", m.names[l], "weights",
                                            (json_int_t)m.weights[l], "delta_l_co", dl, "top1", t,
                                            "formats", f));
  }
  lpq_store_sensitivity_clear(&m);
  lpq_api_reply(call, json_pack("{s:I, s:o, s:o}", "job", (json_int_t)id, "bits", bits,
                                "layers", layers));
}
