#!/usr/bin/python3
"""Where lpq and ONNX Runtime part on an exported model: for every quantized activation of an
export (the tensors lpq/<layer>/input/quantized), the number of its values that the two engines
put on different grid points, over the first N images. The rounding rules are the same (int and
FP8: lpq rounds as QuantizeLinear; LP: the model-local LPQuantize with lpq's thresholds), and so
is the input of the first layer's quantizer, so a value of the first re-quantized activation
that differs was computed by a layer whose float sums, taken in another order by the two
engines, lie on the two sides of a rounding boundary; later activations add what earlier ones
carried in. (docs/FORMATS.md: "Why not 1e-4 everywhere".)

For each tensor it writes a copy of the model whose only output is that tensor (the rest of
the graph left as is: both engines skip what the output does not need), runs `lpq run` and
tests/export/ort_check.js (ONNX Runtime, optimisation off) on it and compares the two.

Usage: /usr/bin/python3 bench/export_flips.py Q.onnx X.npy [--lpq build/bin/lpq] [--tmp DIR]
           [--batch 64] [--json]
X.npy: float32 inputs as the model takes them (bench/export_ort.sh writes test_x_256.npy).
An offline bench tool (NumPy and node); lpq never runs Python.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from read_export import fields  # noqa: E402  (the ~40-line protobuf reader)


def varint_bytes(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(num, payload):
    """A length-delimited field."""
    return varint_bytes(num << 3 | 2) + varint_bytes(len(payload)) + payload


def encode(num, wt, v):
    if wt == 0:
        return varint_bytes(num << 3) + varint_bytes(v)
    if wt == 2:
        return ld(num, v)
    return varint_bytes(num << 3 | wt) + v


def float_output(name):
    """ValueInfoProto {name, type {tensor_type {elem_type FLOAT}}}."""
    return ld(1, name.encode()) + ld(2, ld(1, encode(1, 0, 1)))


def with_output(model, name):
    """The model with graph.output = [name] (ModelProto.graph = 7, GraphProto.output = 12)."""
    out = bytearray()
    for num, wt, v in fields(model):
        if num == 7:
            g = bytearray()
            for gn, gwt, gv in fields(v):
                if gn != 12:
                    g += encode(gn, gwt, gv)
            g += ld(12, float_output(name))
            out += ld(7, bytes(g))
        else:
            out += encode(num, wt, v)
    return bytes(out)


def producers(model):
    """{output name: first input name} of every node."""
    prod = {}
    for num, _, v in fields(model):
        if num != 7:
            continue
        for gn, _, gv in fields(v):
            if gn != 1:
                continue
            ins, outs = [], []
            for nn, _, nv in fields(gv):
                if nn == 1:
                    ins.append(nv.decode())
                elif nn == 2:
                    outs.append(nv.decode())
            for o in outs:
                prod[o] = ins[0] if ins else None
    return prod


def unquantized(model, name):
    """The float tensor the quantizing nodes of `name` (lpq/<layer>/input/...) start from."""
    prod, base = producers(model), name[:-len("/quantized")]
    t = prod.get(name)
    while t is not None and t.startswith(base):
        t = prod.get(t)
    return t


def run_both(model, name, tmp, tag, xpath, opts, here):
    t = os.path.join(tmp, f"{tag}.onnx")
    open(t, "wb").write(with_output(model, name))
    lo, oo = os.path.join(tmp, f"{tag}.lpq.npy"), os.path.join(tmp, f"{tag}.ort.npy")
    subprocess.run([opts["--lpq"], "run", "--model", t, "--data", xpath, "--batch",
                    opts["--batch"], "--out", lo], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["node", os.path.join(here, "..", "tests", "export", "ort_check.js"), t,
                    xpath, lo, "disabled", "--batch", opts["--batch"], "--save", oo],
                   check=True, stdout=subprocess.DEVNULL)
    return np.load(lo), np.load(oo)


def quantized_activations(model):
    """Node outputs named lpq/<layer>/input/quantized, in graph order."""
    names = []
    for num, _, v in fields(model):
        if num != 7:
            continue
        for gn, _, gv in fields(v):
            if gn != 1:  # NodeProto
                continue
            for nn, _, nv in fields(gv):
                if nn == 2 and nv.decode().endswith("/input/quantized"):
                    names.append(nv.decode())
    return names


def main():
    args = sys.argv[1:]
    opts = {"--lpq": "build/bin/lpq", "--tmp": None, "--batch": "64"}
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    pos = []
    i = 0
    while i < len(args):
        if args[i] in opts:
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            pos.append(args[i])
            i += 1
    if len(pos) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    qpath, xpath = pos
    model = open(qpath, "rb").read()
    tmp = opts["--tmp"] or tempfile.mkdtemp(prefix="lpq-flips-")
    os.makedirs(tmp, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    first = None
    for k, name in enumerate(quantized_activations(model)):
        a, b = run_both(model, name, tmp, f"t{k}", xpath, opts, here)
        d = a != b
        n = a.shape[0]
        per_image = d.reshape(n, -1).any(1)
        rows.append({"tensor": name, "values": int(a.size), "differ": int(d.sum()),
                     "images_with_one": int(per_image.sum()), "images": n})
        if d.any() and first is None:
            first = (k, name, a, b)
        if not as_json:
            r = rows[-1]
            print(f"{k:3d} {name}: {r['differ']} of {r['values']} values differ "
                  f"({r['differ'] / r['values']:.2e}), in {r['images_with_one']} of {n} images",
                  flush=True)
    flips = []
    if first is not None:  # the float values the first differing values were rounded from
        k, name, a, b = first
        pre = unquantized(model, name)
        pa, pb = run_both(model, pre, tmp, f"pre{k}", xpath, opts, here)
        grid = np.unique(np.abs(a))
        for j in np.nonzero((a != b).ravel())[0]:
            x, y = pa.ravel()[j], pb.ravel()[j]
            ulps = abs(int(np.float32(x).view(np.int32)) - int(np.float32(y).view(np.int32)))
            flips.append({"tensor": name, "unquantized": pre, "index": int(j),
                          "sum_lpq": float(x), "sum_ort": float(y), "ulps_apart": ulps,
                          "quantized_lpq": float(a.ravel()[j]), "quantized_ort": float(b.ravel()[j]),
                          "steps_apart": abs(int(np.searchsorted(grid, abs(a.ravel()[j]))) -
                                             int(np.searchsorted(grid, abs(b.ravel()[j]))))})
            if not as_json:
                f = flips[-1]
                print(f"first flip: {pre}[{j}] = {x!r} (lpq) / {y!r} (ORT), {ulps} ulp apart -> "
                      f"{f['quantized_lpq']!r} / {f['quantized_ort']!r}, {f['steps_apart']} step")
    if as_json:
        print(json.dumps({"tensors": rows, "first_flips": flips}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
