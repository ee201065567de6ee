// Time ONNX Runtime (onnxruntime-node, CPU) on one model: prints one JSON object with
// median_batch_ms. Usage: node ort.js MODEL.onnx INPUT.npy THREADS RUNS WARMUP [OUT.npy]
// OUT.npy, when given, receives the first output (float32) so other engines can be checked.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// A float32 little-endian C-order .npy file (what export.py writes) as {dims, data}.
function loadNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr': '<f4'/.test(header) || /'fortran_order': True/.test(header))
    throw new Error(`${path}: expected little-endian float32 in C order: ${header}`);
  const dims = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length - start !== count * 4) throw new Error(`${path}: size does not match shape`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return { dims, data };
}

function saveNpy(path, tensor) {
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(pre);
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(tensor.data.length * 4);
  tensor.data.forEach((v, i) => body.writeFloatLE(v, 4 * i));
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const [model, input, threads, runs, warmup, out] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'],
  });
  const x = loadNpy(input);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.dims) };
  const times = [];
  for (let i = 0; i < Number(warmup) + Number(runs); i++) {
    const t0 = process.hrtime.bigint();
    const result = await session.run(feeds);
    if (i === 0 && out) saveNpy(out, result[session.outputNames[0]]);
    if (i >= Number(warmup)) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  const version = require('onnxruntime-node/package.json').version;
  console.log(JSON.stringify({ engine: 'onnxruntime-node', version, model, threads: Number(threads),
                               runs: n, median_batch_ms: median, min_batch_ms: times[0] }));
}

main().catch(e => { console.error(`ort.js: ${e.message}`); process.exit(1); });
