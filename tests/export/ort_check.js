// Runs an exported model in ONNX Runtime (onnxruntime-node, CPU, one thread) and compares its
// first output with lpq's logits. Usage:
//   node ort_check.js Q.onnx INPUT.npy LPQ_LOGITS.npy [OPT_LEVEL] [options]
//     --labels Y.npy   uint8/int64 labels: top-1 accuracy of ORT's and lpq's logits
//     --first N        the logit figures over the first N samples only (default: all)
//     --batch B        samples per session.run (default: all at once)
//     --save O.npy     ORT's logits, float32
// Prints one JSON object: max_abs (max |ORT - lpq|), max_ref (max |lpq|), rel (their ratio),
// within_1e-4 (the fraction of samples whose max |ORT - lpq| <= 1e-4 max_ref), all over the
// first N; top1_mismatch (samples whose argmax differs) and samples over all; with labels
// top1_ort and top1_lpq (%). OPT_LEVEL: ORT's graphOptimizationLevel ('basic' by default: see
// docs/FORMATS.md on ORT's QDQ fusions). onnxruntime-node comes from bench/engine/node_modules
// (npm install --ignore-scripts there).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '../../bench/engine/node_modules/onnxruntime-node'));

function loadNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = header.match(/'descr': '([^']*)'/)[1];
  const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const read = { '<f4': [4, (o) => buf.readFloatLE(o)], '|u1': [1, (o) => buf[o]],
                 '<i8': [8, (o) => Number(buf.readBigInt64LE(o))] }[descr];
  if (!read) throw new Error(`${file}: expected float32, uint8 or int64: ${header}`);
  const data = descr === '<f4' ? new Float32Array(count) : new Array(count);
  for (let i = 0; i < count; i++) data[i] = read[1](start + read[0] * i);
  return { dims, data };
}

function saveNpy(file, dims, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'),
                                        Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
  const args = process.argv.slice(2), opt = {};
  const pos = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('--')) opt[args[i].slice(2)] = args[++i];
    else pos.push(args[i]);
  }
  const [model, input, ref, level] = pos;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: level || 'basic', executionProviders: ['cpu'],
  });
  const x = loadNpy(input);
  const want = loadNpy(ref);
  const n = x.dims[0], per = x.data.length / n, batch = Number(opt.batch || n);
  let y = null;
  for (let b0 = 0; b0 < n; b0 += batch) {
    const m = Math.min(batch, n - b0);
    const t = new ort.Tensor('float32', x.data.subarray(b0 * per, (b0 + m) * per), [m, ...x.dims.slice(1)]);
    const out = (await session.run({ [session.inputNames[0]]: t }))[session.outputNames[0]].data;
    if (!y) y = new Float32Array((out.length / m) * n);
    y.set(out, b0 * (out.length / m));
  }
  if (y.length !== want.data.length) throw new Error(`ORT gave ${y.length} values, lpq ${want.data.length}`);
  if (opt.save) saveNpy(opt.save, want.dims, y);
  const classes = want.dims[want.dims.length - 1];
  const first = Math.min(Number(opt.first || n), n);
  let maxAbs = 0, maxRef = 0, mismatch = 0, within = 0;
  for (let i = 0; i < first * classes; i++) maxRef = Math.max(maxRef, Math.abs(want.data[i]));
  for (let r = 0; r < first; r++) {
    let d = 0;
    for (let j = r * classes; j < (r + 1) * classes; j++) d = Math.max(d, Math.abs(y[j] - want.data[j]));
    maxAbs = Math.max(maxAbs, d);
    if (d <= 1e-4 * maxRef) within++;
  }
  const argmax = (a, r) => { let b = 0; for (let j = 1; j < classes; j++) if (a[r * classes + j] > a[r * classes + b]) b = j; return b; };
  let okOrt = 0, okLpq = 0;
  const labels = opt.labels ? loadNpy(opt.labels).data : null;
  for (let r = 0; r < n; r++) {
    const a = argmax(y, r), b = argmax(want.data, r);
    if (a !== b) mismatch++;
    if (labels) { okOrt += a === labels[r]; okLpq += b === labels[r]; }
  }
  const res = { model: path.basename(model), samples: n, compared: first, max_abs: maxAbs,
                max_ref: maxRef, rel: maxAbs / maxRef, 'within_1e-4': within / first,
                top1_mismatch: mismatch };
  if (labels) { res.top1_ort = 100 * okOrt / n; res.top1_lpq = 100 * okLpq / n; }
  console.log(JSON.stringify(res));
}
main().catch(e => { console.error(`ort_check: ${e.message}`); process.exit(1); });
