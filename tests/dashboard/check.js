// tests/dashboard/check.js: loads lpq-coordinator's dashboard in Debian's headless chromium
// (puppeteer-core, installed by make deps) and reports what the rendered DOM shows, as one JSON
// line on stdout, for tests/test_dashboard.c to check. Screenshots go to OUT_DIR.
//   node tests/dashboard/check.js BASE_URL JOB OUT_DIR
// 1. the jobs page lists JOB;  2. JOB's page: once it is loaded this prints "page-ready" and
// the caller starts a worker, so the job's progress reaches the open page as SSE events;
// 3. after the job ends, the page loaded afresh: the front of the last generation.
'use strict';
const puppeteer = require('puppeteer-core');
const fs = require('fs');

const [base, job, outDir] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const result = {};

async function ready(page, url) {
  await page.goto(url, {waitUntil: 'load'});
  await page.waitForFunction(() => document.body.dataset.ready === '1' || document.body.dataset.error,
    {timeout: 30000});
  const error = await page.evaluate(() => document.body.dataset.error || null);
  if (error) throw new Error(url + ': ' + error);
}

const count = (page, sel) => page.$eval(sel, (e) => +e.dataset.count);
const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

(async () => {
  fs.mkdirSync(outDir, {recursive: true});
  const browser = await puppeteer.launch({executablePath: chromium, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run']});
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 900});
    page.on('console', (m) => { if (m.type() === 'error') process.stderr.write('page: ' + m.text() + '\n'); });

    await ready(page, base + '/');
    result.jobs_row = await page.$(`#jobs-table tbody tr[data-job="${job}"]`) !== null;
    result.jobs_rows = await page.$$eval('#jobs-table tbody tr', (rows) => rows.length);
    // the filters: a text no job has hides the row, the job's name shows it; a state it is not in
    const row = `#jobs-table tbody tr[data-job="${job}"]`;
    const hidden = () => page.$eval(row, (e) => e.hidden);
    const setValue = (sel, v, ev) => page.$eval(sel, (e, v, ev) => {
      e.value = v; e.dispatchEvent(new Event(ev));
    }, v, ev);
    await setValue('#filter', 'no-such-job-xyz', 'input');
    result.filter_text_hides = await hidden();
    await setValue('#filter', await page.$eval(row, (e) => e.cells[1].textContent), 'input');
    result.filter_name_shows = !(await hidden());
    await setValue('#filter', '', 'input');
    await setValue('#status-filter', 'canceled', 'change');
    result.filter_state_hides = await hidden();
    await setValue('#status-filter', '', 'change');
    await page.screenshot({path: outDir + '/jobs.png', fullPage: true});

    await ready(page, base + '/job/' + job);
    result.status_at_load = await text(page, '#fact-status');
    result.evaluations_at_load = +(await text(page, '#fact-evaluations'));
    result.sse_at_load = await count(page, '#sse-events');
    process.stdout.write('page-ready\n');
    // the workers table names what a worker runs, a genome of this job, at some point while it runs
    const workerSeen = page.waitForFunction((j) => [...document.querySelectorAll(
      '#workers tbody td.task a')].some((a) => a.textContent === 'job ' + j), {timeout: 60000}, job)
      .then(() => true, () => false);
    // a job.progress notification after the first snapshot: progress moved
    const t0 = Date.now();
    await page.waitForFunction((n) => +document.querySelector('#sse-events').dataset.count > n,
      {timeout: 60000}, result.sse_at_load).catch(() => {});
    result.sse_wait_ms = Date.now() - t0;
    result.sse_events = await count(page, '#sse-events');
    // the events move the evaluations (the job's sensitivity comes first: none counted yet)
    await page.waitForFunction((n) => +document.querySelector('#fact-evaluations').textContent > n,
      {timeout: 60000}, result.evaluations_at_load).catch(() => {});
    result.sse_events_moved = await count(page, '#sse-events');
    result.evaluations_after_event = +(await text(page, '#fact-evaluations'));
    result.rate_after_event = parseFloat(await text(page, '#fact-rate'));
    await page.waitForFunction((n) => +document.querySelector('#sse-events').dataset.count > n + 3 ||
      /done/.test(document.querySelector('#fact-status').textContent), {timeout: 60000},
    result.sse_events);
    result.worker_runs_job = await workerSeen;
    await new Promise((r) => setTimeout(r, 300));
    await page.screenshot({path: outDir + '/job-running.png', fullPage: true});
    // let it finish, then load the page afresh: the last generation's front
    await page.waitForFunction(() => /done|failed|canceled/.test(
      document.querySelector('#fact-status').textContent), {timeout: 120000});
    result.status_live = await text(page, '#fact-status');
    result.sse_events_final = await count(page, '#sse-events');

    await ready(page, base + '/job/' + job);
    result.status = await text(page, '#fact-status');
    result.front_count = await count(page, '#front-count');
    result.front_generation = +(await page.$eval('#front-count', (e) => e.dataset.generation));
    result.slider_max = +(await page.$eval('#gen-slider', (e) => e.max));
    result.front_canvas = await page.$('#front-chart canvas') !== null;
    result.hv_canvas = await page.$('#hv-chart canvas') !== null;
    result.heat_rows = await page.$$eval('#heat tbody tr', (rows) => rows.length);
    result.export_links = await page.$$eval('#exports a', (a) => a.map((x) => x.textContent));
    result.workers_rows = await page.$$eval('#workers tbody tr', (rows) => rows.length);
    result.sens_shown = await page.$eval('#sens-section', (e) => !e.hidden);
    result.sens_rows = await page.$$eval('#sens tbody tr', (rows) => rows.length);
    // hovering a point of the selected front shows its genome, top-1 and LPA cost
    const at = await page.evaluate(() => {
      const u = state.frontChart, p = state.frontPts.find((q) => q.k === state.sel);
      const r = u.over.getBoundingClientRect();
      return {x: r.left + u.valToPos(p.x, 'x'), y: r.top + u.valToPos(p.y, 'y')};
    });
    await page.mouse.move(at.x, at.y);
    await page.waitForFunction(() => !document.querySelector('#tip').hidden, {timeout: 5000})
      .catch(() => {});
    result.tip = await page.$eval('#tip', (e) => (e.hidden ? '' : e.textContent));
    await page.mouse.move(0, 0);
    await page.screenshot({path: outDir + '/job.png', fullPage: true});
    // the slider: generation 0's front is drawn too
    await page.$eval('#gen-slider', (e) => { e.value = '0'; e.dispatchEvent(new Event('input')); });
    await page.waitForFunction(() => document.querySelector('#front-count').dataset.generation === '0',
      {timeout: 10000});
    result.front_count_gen0 = await count(page, '#front-count');
    // the play button steps through the generations from 0
    await page.click('#play');
    await page.waitForFunction(() => +document.querySelector('#front-count').dataset.generation >= 2,
      {timeout: 10000}).catch(() => {});
    result.play_generation = +(await page.$eval('#front-count', (e) => e.dataset.generation));
    await page.click('#play');
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => {
  process.stdout.write(JSON.stringify(Object.assign(result, {error: String(e && e.stack || e)})) + '\n');
  process.exit(1);
});
