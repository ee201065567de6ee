// Runs an exported model in ONNX Runtime (onnxruntime-node, CPU, one thread) and compares its
// first output with lpq's logits. Usage:
//   node ort_check.js Q.onnx INPUT.npy LPQ_LOGITS.npy [OPT_LEVEL]
// Prints one JSON object: max_abs (max |ORT - lpq|), max_ref (max |lpq|), rel (their ratio),
// top1_mismatch (samples whose argmax differs), samples. OPT_LEVEL: ORT's
// graphOptimizationLevel ('basic' by default: see docs/FORMATS.md on ORT's QDQ fusions).
// onnxruntime-node comes from bench/engine/node_modules (npm install --ignore-scripts there).
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
  if (!/'descr': '<f4'/.test(header)) throw new Error(`${file}: expected float32: ${header}`);
  const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return { dims, data };
}

async function main() {
  const [model, input, ref, level] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: level || 'basic', executionProviders: ['cpu'],
  });
  const x = loadNpy(input);
  const want = loadNpy(ref);
  const y = (await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.dims) }))[session.outputNames[0]].data;
  if (y.length !== want.data.length) throw new Error(`ORT gave ${y.length} values, lpq ${want.data.length}`);
  const classes = want.dims[want.dims.length - 1], n = want.data.length / classes;
  let maxAbs = 0, maxRef = 0, mismatch = 0;
  for (let i = 0; i < y.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(y[i] - want.data[i]));
    maxRef = Math.max(maxRef, Math.abs(want.data[i]));
  }
  const argmax = (a, r) => { let b = 0; for (let j = 1; j < classes; j++) if (a[r * classes + j] > a[r * classes + b]) b = j; return b; };
  for (let r = 0; r < n; r++) if (argmax(y, r) !== argmax(want.data, r)) mismatch++;
  console.log(JSON.stringify({ model: path.basename(model), samples: n, max_abs: maxAbs, max_ref: maxRef,
                               rel: maxAbs / maxRef, top1_mismatch: mismatch }));
}
main().catch(e => { console.error(`ort_check: ${e.message}`); process.exit(1); });
