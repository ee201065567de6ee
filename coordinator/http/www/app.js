/* lpq dashboard: the jobs list and a job's page. Data from the coordinator's read-only JSON-RPC
 * methods through /api/METHOD, live progress from /events/JOB (Server-Sent Events fed by
 * job.watch), charts by uPlot. Served by lpq-coordinator --http (coordinator/http/). */
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};

async function api(method, params) {
  const q = params ? '?params=' + encodeURIComponent(JSON.stringify(params)) : '';
  const r = await fetch('/api/' + method + q, {headers: {accept: 'application/json'}});
  const body = await r.json();
  if (!r.ok) throw new Error((body.message || body.error && body.error.message) || r.statusText);
  return body;
}

const fmt = (v, d = 4) => v === null || v === undefined || Number.isNaN(v) ? '–'
  : typeof v === 'number' ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)
    ? v.toExponential(2) : +v.toFixed(d)) : String(v);
const duration = (s) => s === null || s === undefined ? '–' : s < 90 ? s.toFixed(0) + ' s'
  : s < 5400 ? (s / 60).toFixed(1) + ' min' : (s / 3600).toFixed(1) + ' h';
const finalStatus = (s) => s === 'done' || s === 'failed' || s === 'canceled';

/* ---- jobs page --------------------------------------------------------------------------- */

const jobRows = new Map();
const jobStreams = new Map();

function jobRow(j) {
  let tr = jobRows.get(j.job);
  if (!tr) {
    tr = el('tr', {'data-job': j.job});
    for (let i = 0; i < 10; i++) tr.append(el('td'));
    tr.cells[0].append(el('a', {href: '/job/' + j.job, text: '#' + j.job}));
    tr.cells[3].append(el('div', {class: 'bar'}, el('div')));
    jobRows.set(j.job, tr);
  }
  const c = tr.cells;
  if (j.name !== undefined) c[1].textContent = j.name;
  c[2].textContent = j.status;
  c[2].className = 'status-' + j.status;
  tr.dataset.status = j.status;
  c[3].firstChild.firstChild.style.width = ((j.progress || 0) * 100).toFixed(1) + '%';
  c[3].title = ((j.progress || 0) * 100).toFixed(1) + '%';
  if ('eta_s' in j) c[4].textContent = finalStatus(j.status) ? '' : duration(j.eta_s);
  c[5].textContent = j.generation + (j.generations ? ' / ' + j.generations : '');
  c[6].textContent = j.evaluations;
  c[7].textContent = fmt(j.best_l_co);
  c[8].textContent = j.front_size === undefined ? '' : j.front_size;
  if (j.created_at) c[9].textContent = j.created_at.replace('T', ' ').replace('Z', '');
  return tr;
}

function applyFilter() {
  const text = $('#filter').value.trim().toLowerCase();
  const status = $('#status-filter').value;
  for (const tr of jobRows.values()) {
    const hay = tr.textContent.toLowerCase();
    tr.hidden = (status && tr.dataset.status !== status) || (text && !hay.includes(text));
  }
}

async function jobsPage() {
  $('#jobs-page').hidden = false;
  const r = await api('job.list', {limit: 1000});
  const jobs = r.jobs.slice().sort((a, b) => b.job - a.job); /* newest first */
  const body = $('#jobs-table tbody');
  for (const j of jobs) body.append(jobRow(j));
  const total = r.total !== undefined ? r.total : jobs.length;
  $('#jobs-total').textContent = total + (total === 1 ? ' job' : ' jobs');
  $('#filter').addEventListener('input', applyFilter);
  $('#status-filter').addEventListener('change', applyFilter);
  /* live: one event stream for the newest 64 unfinished jobs (job.watch each); a browser gives
   * a host 6 connections, so not one stream per job */
  const live = jobs.filter((j) => !finalStatus(j.status)).slice(0, 64).map((j) => j.job);
  if (live.length) {
    const es = new EventSource('/events?jobs=' + live.join(','));
    const open = new Set(live);
    es.addEventListener('progress', (ev) => {
      const p = JSON.parse(ev.data);
      jobRow(p);
      if (finalStatus(p.status)) open.delete(p.job);
      if (!open.size) es.close();
    });
    jobStreams.set('all', es);
  }
  document.body.dataset.ready = '1';
}

/* ---- job page ---------------------------------------------------------------------------- */

const state = {job: 0, gens: 0, fronts: new Map(), sel: 0, chosen: null, frontChart: null,
  hvChart: null, rateChart: null, playing: null, lastEvent: null, rate: null, events: 0};
const palette = (t) => { /* blue (early) to orange (late) */
  const a = [59, 130, 246], b = [234, 88, 12];
  return `rgb(${a.map((x, i) => Math.round(x + (b[i] - x) * t)).join(',')})`;
};

function fact(dl, name, value, id) {
  dl.append(el('dt', {text: name}), el('dd', id ? {id, text: value} : {text: value}));
}

function renderFacts(p, info) {
  const dl = $('#job-facts');
  dl.textContent = '';
  fact(dl, 'status', p.status, 'fact-status');
  fact(dl, 'generation', p.generation + ' / ' + (p.generations || '?'));
  fact(dl, 'evaluations', String(p.evaluations), 'fact-evaluations');
  const rate = state.rate !== null ? state.rate : p.elapsed_s > 0 ? p.evaluations / p.elapsed_s : null;
  fact(dl, 'evaluations/s', rate === null ? '–' : rate.toFixed(1), 'fact-rate');
  fact(dl, 'elapsed', duration(p.elapsed_s));
  fact(dl, 'ETA', finalStatus(p.status) ? '–' : duration(p.eta_s));
  fact(dl, 'best L_CO', fmt(p.best_l_co));
  fact(dl, 'front size', String(p.front_size));
  fact(dl, 'hypervolume', fmt(p.hypervolume));
  fact(dl, 'workers busy', String(p.workers === undefined ? '–' : p.workers));
  if (info && info.settings) fact(dl, 'objective', info.settings.objective || 'bits');
  if (p.error) fact(dl, 'error', p.error);
  $('#job-bar').style.width = ((p.progress || 0) * 100).toFixed(1) + '%';
}

async function loadFront(g) {
  if (!state.fronts.has(g)) {
    const r = await api('job.pareto', {job: state.job, generation: g, front_only: true});
    state.fronts.set(g, r.individuals.filter((i) => i.rank === 0 && i.feasible));
  }
  return state.fronts.get(g);
}

function chartWidth(sel) {
  return Math.max(300, $(sel).getBoundingClientRect().width - 8);
}

async function drawFront() {
  const g = state.sel, xKey = $('#x-axis').value;
  const gens = []; /* the selected generation and up to 11 before it */
  for (let k = Math.max(0, g - 11); k <= g; k++) gens.push(k);
  const fronts = await Promise.all(gens.map(loadFront));
  /* one x array for all series (uPlot's aligned data); each series has values at its points */
  const pts = [];
  fronts.forEach((f, i) => f.forEach((ind) => {
    const k = gens[i];
    const x = ind[xKey];
    if (typeof x === 'number' && typeof ind.l_co === 'number') pts.push({x, y: ind.l_co, k, ind});
  }));
  pts.sort((a, b) => a.x - b.x);
  const xs = pts.map((p) => p.x);
  const data = [xs];
  const series = [{label: xKey === 'l_cr' ? 'L_CR' : 'mean weight bits'}];
  gens.forEach((k) => {
    data.push(pts.map((p) => (p.k === k ? p.y : null)));
    const last = k === g;
    const t = g > gens[0] ? (k - gens[0]) / (g - gens[0]) : 1;
    series.push({label: 'gen ' + k, stroke: palette(t),
      paths: () => null, points: {show: true, size: last ? 9 : 5, width: 1,
        fill: palette(t)}});
  });
  const current = fronts[fronts.length - 1];
  $('#front-count').textContent = String(current.length);
  $('#front-count').dataset.count = String(current.length);
  $('#front-count').dataset.generation = String(g);
  $('#front-label').textContent = `generation ${g} of ${Math.max(g, state.gens - 1)}, ` +
    'coloured by generation (the 11 before it smaller)';
  if (state.frontChart) state.frontChart.destroy();
  const tip = $('#tip');
  state.frontPts = pts;
  const opts = {
    width: chartWidth('#front-chart'), height: 340, legend: {show: true},
    scales: {x: {time: false}},
    axes: [{label: series[0].label}, {label: 'L_CO'}],
    cursor: {focus: {prox: 12}, points: {size: 10}},
    series,
    hooks: {setCursor: [(u) => {
      /* the point under the cursor: of those within 4 px the latest generation's (drawn on
       * top), else the nearest within 12 px. Not uPlot's index, which names an x value that
       * points of several generations share. */
      const {left, top} = u.cursor;
      let p = null, pd = 0;
      for (const q of (left === null || left < 0) ? [] : pts) {
        const dx = u.valToPos(q.x, 'x') - left, dy = u.valToPos(q.y, 'y') - top;
        const d = dx * dx + dy * dy;
        if (d > 144) continue;
        const near = d <= 16, pNear = p !== null && pd <= 16;
        if (!p || (near && !pNear) || (near && (q.k > p.k || (q.k === p.k && d < pd))) ||
            (!near && !pNear && d < pd)) { p = q; pd = d; }
      }
      state.hover = p;
      if (!p) { tip.hidden = true; return; }
      const ind = p.ind;
      tip.textContent = `genome ${ind.genome} (generation ${p.k})\nL_CO ${fmt(ind.l_co)}  ` +
        `L_CR ${fmt(ind.l_cr)}\nmean bits w ${fmt(ind.mean_weight_bits, 2)} a ` +
        `${fmt(ind.mean_act_bits, 2)}\ntop-1 ${fmt(ind.top1, 4)}  LPA latency ` +
        `${fmt(ind.latency_s)} s, energy ${fmt(ind.energy_pj)} pJ`;
      const r = u.over.getBoundingClientRect();
      tip.style.left = (r.left + u.cursor.left + 14) + 'px';
      tip.style.top = (r.top + u.cursor.top + 14) + 'px';
      tip.hidden = false;
    }]},
  };
  state.frontChart = new uPlot(opts, data, $('#front-chart'));
  state.frontChart.over.addEventListener('mouseleave', () => { tip.hidden = true; });
  state.frontChart.over.addEventListener('click', () => {
    if (state.hover) showConfig(state.hover.ind.genome);
  });
}

/* Hypervolume and evaluations/s per generation: read once from v_generation_stats (one job's
 * rows, through its index), then extended from the progress events; a gap (events coalesced
 * behind a slow connection) reads them again. */
const genData = {g: [], hv: [], rate: [], lastEvent: null, fetched: 0};

function plotGenerations() {
  const line = (label, stroke, values, target, old) => {
    if (old) { old.setData([genData.g, values]); return old; }
    return new uPlot({width: chartWidth(target), height: 200, scales: {x: {time: false}},
      axes: [{label: 'generation', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]}, {label}],
      legend: {show: false},
      series: [{}, {label, stroke, width: 2, points: {show: true, size: 5}}]},
    [genData.g, values], $(target));
  };
  state.hvChart = line('hypervolume', '#3b82f6', genData.hv, '#hv-chart', state.hvChart);
  state.rateChart = line('evaluations/s', '#ea580c', genData.rate, '#rate-chart', state.rateChart);
}

async function drawGenerationCharts() {
  genData.fetched = performance.now();
  const r = await api('db.query', {table: 'v_generation_stats', where: {job: state.job},
    columns: ['generation', 'hypervolume', 'evals_per_s'], limit: 1000000});
  const col = (name) => r.rows.map((row) => row[r.columns.indexOf(name)]);
  genData.g = col('generation');
  genData.hv = col('hypervolume');
  genData.rate = col('evals_per_s');
  plotGenerations();
}

/* Every event: its generation's point, when it follows the last one known. */
function recordGeneration(p) {
  const last = genData.g.length ? genData.g[genData.g.length - 1] : -1;
  const prev = genData.lastEvent;
  genData.lastEvent = p;
  if (p.generation <= last || !(p.front_size > 0 || p.hypervolume !== null)) return;
  if (p.generation === last + 1 && prev && prev.generation === last) {
    const dt = p.elapsed_s - prev.elapsed_s;
    genData.g.push(p.generation);
    genData.hv.push(p.hypervolume);
    genData.rate.push(dt > 0 ? (p.evaluations - prev.evaluations) / dt : null);
  } else {
    genData.gap = true;
  }
}

async function extendGenerations() {
  if (genData.gap && (performance.now() - genData.fetched > 5000 || !genData.g.length)) {
    genData.gap = false;
    await drawGenerationCharts();
  } else {
    plotGenerations();
  }
}

/* The per-layer formats of a config as a heat map: layers x (bits, es, rs, sf) of the
 * weights and the activations. */
function parseFormat(f) {
  let m = /^lp<(\d+),(\d+),(\d+),(-?\d+)>$/.exec(f || '');
  if (m) return {n: +m[1], es: +m[2], rs: +m[3], sf: +m[4], text: f};
  m = /<(\d+)/.exec(f || '');
  if (m) return {n: +m[1], es: null, rs: null, sf: null, text: f};
  return {n: f === 'fp32' ? 32 : null, es: null, rs: null, sf: null, text: f || ''};
}

function heatColor(v, lo, hi) {
  if (v === null || v === undefined || Number.isNaN(v)) return '#f3f4f6';
  const t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
  return `hsl(${(220 - 200 * t).toFixed(0)}, 75%, ${(88 - 30 * t).toFixed(0)}%)`;
}

function renderHeat(table, header, rows) {
  table.textContent = '';
  table.append(el('thead', {}, el('tr', {}, ...header.map((h) => el('th', {text: h})))));
  const body = el('tbody');
  const ncol = header.length - 1;
  const ranges = [];
  for (let c = 0; c < ncol; c++) {
    const vals = rows.map((r) => r.values[c]).filter((v) => typeof v === 'number');
    ranges.push([Math.min(...vals), Math.max(...vals)]);
  }
  for (const r of rows) {
    const tr = el('tr', {}, el('td', {text: r.name}));
    r.values.forEach((v, c) => tr.append(el('td', {class: 'cell', title: r.titles[c] || '',
      style: 'background:' + heatColor(v, ranges[c][0], ranges[c][1]), text: fmt(v, 3)})));
    body.append(tr);
  }
  table.append(body);
}

/* The genome to show first: the best of the job.get the page loaded with (the pick's, or the
 * lowest L_F / L_CO), else the lowest L_CO of the newest front drawn. Named explicitly, and
 * job.get is not asked again: both would look the best up through v_best_config, a view over
 * all of the job's generations. */
async function defaultGenome() {
  const info = state.info || {};
  if (info.best && info.best.genome) return info.best.genome;
  const front = state.fronts.get(state.gens - 1) || [];
  return front.length ? front.reduce((a, b) => (b.l_co < a.l_co ? b : a)).genome : null;
}

async function showConfig(genome) {
  if (!genome) genome = await defaultGenome();
  if (!genome) return;
  const r = await api('job.export', {job: state.job, genome});
  state.chosen = r.genome;
  const cfg = r.config || {};
  const def = cfg.default || {};
  const rows = (cfg.layers || []).map((l) => {
    const w = parseFormat(l.w || def.w), a = parseFormat(l.a || def.a);
    return {name: l.name, values: [w.n, w.es, w.rs, w.sf, a.n, a.es, a.rs, a.sf],
      titles: [w.text, w.text, w.text, w.text, a.text, a.text, a.text, a.text]};
  });
  renderHeat($('#heat'), ['layer', 'w bits', 'w es', 'w rs', 'w sf', 'a bits', 'a es', 'a rs',
    'a sf'], rows);
  const s = r.scores || {};
  $('#config-label').textContent = `genome ${r.genome}: L_CO ${fmt(s.l_co)}, mean weight bits ` +
    `${fmt(s.mean_weight_bits, 2)}`;
  const ex = $('#exports');
  ex.textContent = 'Download: ';
  for (const f of ['config.json', 'model_lp.onnx', 'weights.lpw', 'model_q.onnx',
    'model_q.encodings.json'])
    ex.append(el('a', {href: `/export/${state.job}/${f}?genome=${r.genome}`, text: f}));
}

async function showSensitivity() {
  let r;
  try { r = await api('job.sensitivity', {job: state.job}); } catch (e) { return; }
  if (!r.layers || !r.layers.length) return;
  $('#sens-section').hidden = false;
  renderHeat($('#sens'), ['layer'].concat(r.bits.map((b) => b + ' bits')),
    r.layers.map((l) => ({name: l.name, values: l.delta_l_co, titles: l.formats})));
}

async function showWorkers() {
  const r = await api('worker.list');
  const body = $('#workers tbody');
  body.textContent = '';
  for (const w of r.workers) {
    const tasks = w.running ? `${w.running} task${w.running > 1 ? 's' : ''}` : '';
    const task = w.job ? el('td', {class: 'task'}, el('a', {href: '/job/' + w.job,
      text: 'job ' + w.job}), ' (' + tasks + ')') : el('td', {text: tasks});
    body.append(el('tr', {}, el('td', {text: w.id}), el('td', {text: w.host || ''}),
      el('td', {text: String(w.threads ?? '')}),
      el('td', {class: w.state === 'busy' ? 'status-running' : '', text: w.state}), task,
      el('td', {text: String(w.done ?? '')}),
      el('td', {text: String(w.failed ?? '')}),
      el('td', {text: w.idle_s === undefined ? '' : fmt(w.idle_s, 1) + ' s'})));
  }
}

function setGenerations(n, follow) {
  const slider = $('#gen-slider');
  const atEnd = +slider.value >= state.gens - 1;
  state.gens = n;
  slider.max = String(Math.max(0, n - 1));
  if (follow && atEnd) {
    state.sel = Math.max(0, n - 1);
    slider.value = String(state.sel);
    $('#gen-value').textContent = String(state.sel);
    return true;
  }
  return false;
}

/* evaluations/s over the last few seconds of the job's own clock (elapsed_s) */
const recent = [];
function updateRate(p) {
  recent.push({e: p.evaluations, t: p.elapsed_s});
  while (recent.length > 2 && recent[recent.length - 1].t - recent[1].t > 5) recent.shift();
  const a = recent[0], b = recent[recent.length - 1];
  state.rate = b.t - a.t > 0.2 ? (b.e - a.e) / (b.t - a.t)
    : p.elapsed_s > 0 ? p.evaluations / p.elapsed_s : null;
}

/* Events are shown as they come; the charts follow the newest one, one refresh at a time. */
let refreshing = null, refreshAgain = false;
function onProgress(p, info) {
  state.events++;
  $('#sse-events').textContent = String(state.events);
  $('#sse-events').dataset.count = String(state.events);
  updateRate(p);
  renderFacts(p, info);
  recordGeneration(p);
  state.latest = p;
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => { /* at most one refresh a second: a fast job sends many events */
    do {
      refreshAgain = false;
      const t0 = performance.now();
      await refreshCharts();
      const wait = 1000 - (performance.now() - t0);
      if (refreshAgain && wait > 0) await new Promise((r) => setTimeout(r, wait));
    } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}

async function refreshCharts() {
  const p = state.latest; /* committed generations: 0..p.generation once there is a front */
  const gens = p.front_size > 0 || p.hypervolume !== null ? p.generation + 1 : 0;
  if (gens !== state.gens) {
    state.fronts.delete(gens - 1);
    if (setGenerations(gens, true) && gens > 0) await drawFront();
    await extendGenerations();
    if (!state.chosen && gens > 0) await showConfig(null).catch(() => {});
  }
  await showWorkers();
}

async function jobPage(id) {
  state.job = id;
  $('#job-page').hidden = false;
  $('#crumb').textContent = '/ job ' + id;
  const info = await api('job.get', {job: id});
  state.info = info;
  document.title = `lpq: job ${id} ${info.name}`;
  $('#job-title').textContent = `Job ${id}: ${info.name}`;
  renderFacts(info, info);
  let gens = 0;
  try {
    const r = await api('job.pareto', {job: id, front_only: true});
    gens = r.generations !== undefined ? r.generations : r.generation + 1;
  } catch (e) { gens = 0; }
  setGenerations(gens, true);
  state.sel = Math.max(0, gens - 1);
  $('#gen-slider').value = String(state.sel);
  $('#gen-value').textContent = String(state.sel);
  const slider = $('#gen-slider');
  slider.addEventListener('input', () => {
    state.sel = +slider.value;
    $('#gen-value').textContent = slider.value;
    drawFront();
  });
  $('#x-axis').addEventListener('change', drawFront);
  $('#play').addEventListener('click', () => {
    if (state.playing) { clearInterval(state.playing); state.playing = null; return; }
    state.sel = 0;
    state.playing = setInterval(() => {
      if (state.sel >= state.gens - 1) { clearInterval(state.playing); state.playing = null; return; }
      slider.value = String(++state.sel);
      $('#gen-value').textContent = slider.value;
      drawFront();
    }, 600);
  });
  const work = [showWorkers(), showSensitivity()];
  if (gens > 0) work.push(drawFront(), drawGenerationCharts(), showConfig(null).catch(() => {}));
  await Promise.all(work);
  if (!finalStatus(info.status)) {
    const es = new EventSource('/events/' + id);
    es.onopen = () => { $('#sse-state').textContent = 'connected'; };
    es.onerror = () => { $('#sse-state').textContent = 'reconnecting'; };
    es.addEventListener('progress', (ev) => {
      const p = JSON.parse(ev.data);
      onProgress(p, info).then(() => {
        if (finalStatus(p.status)) {
          es.close();
          $('#sse-state').textContent = 'job ' + p.status;
          if (!state.chosen) showConfig(null).catch(() => {});
        }
      });
    });
  } else {
    $('#sse-state').textContent = 'job ' + info.status;
  }
  document.body.dataset.ready = '1';
}

async function main() {
  api('server.stats').then((s) => {
    $('#server').textContent = `coordinator up ${duration(s.uptime_s)}`;
  }).catch(() => {});
  const m = /^\/job\/(\d+)$/.exec(location.pathname);
  try {
    if (m) await jobPage(+m[1]);
    else await jobsPage();
  } catch (e) {
    document.body.dataset.error = String(e.message || e);
    const main = document.querySelector('main:not([hidden])') || $('#jobs-page');
    main.hidden = false;
    main.prepend(el('p', {class: 'status-failed', text: 'error: ' + (e.message || e)}));
  }
}

main();
