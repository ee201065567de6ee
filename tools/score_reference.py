#!/usr/bin/python3
"""Independent reference for lpq's candidate score (issue 4), with PyTorch and NumPy.

Offline only (never run by `make test`). Builds a small CNN with seeded random weights, exports
it to tests/fixtures/score_small.onnx with a calibration batch (score_small_x.npy) and a
candidate config (score_small_config.json), then computes, independently of lpq's C code:
  - LP and INT fake quantization from DESIGN section 1 (decode every code, round to the nearest
    value in the linear domain, ties to the even code, saturate), applied to each quantizable
    layer's weight and input activation;
  - the quantized and FP forward passes, capturing every quantizable layer's output (after the
    ReLU that follows it: lpq fuses Conv+ReLU and reports the fused output);
  - InfoNCE (T = 0.5) global and local terms, L_CO = global + mean(local), mean weight bits.
It writes tests/fixtures/score_small_expected.json, which tests/test_score.c compares against.
Usage (from the repository root): /usr/bin/python3 tools/score_reference.py
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
T = 0.5
B = 16


def lp_values(n, es, rs, sf):
    """Positive values of LP<n,es,rs,sf>, codes 1..2^(n-1)-1, straight from DESIGN section 1."""
    vals = []
    for c in range(1, 1 << (n - 1)):
        bits = [(c >> (n - 2 - i)) & 1 for i in range(n - 1)]  # the n-1 bits after the sign
        r = bits[0]
        m = 0
        pos = 0
        while pos < len(bits) and bits[pos] == r and m < rs:
            m += 1
            pos += 1
        if pos < len(bits) and m < rs:
            pos += 1  # the terminating bit
        k = m - 1 if r == 1 else -m
        rest = bits[pos:]
        ebits = rest[:es] + [0] * max(0, es - len(rest))
        e = 0
        for b in ebits:
            e = 2 * e + b
        fbits = rest[es:]
        f = 0
        for b in fbits:
            f = 2 * f + b
        phi = f / (1 << len(fbits)) if fbits else 0.0
        vals.append(2.0 ** (k * (1 << es) + e + phi - sf))
    return np.array(vals)


def int_values(bits, scale):
    return scale * np.arange(1, 1 << (bits - 1), dtype=np.float64)


def quantize(x, vals):
    """Nearest of {0, +-vals}: up past the midpoint, ties to the even (magnitude) code."""
    a = np.abs(x.astype(np.float64))
    full = np.concatenate([[0.0], vals])
    mids = 0.5 * (full[:-1] + full[1:])
    code = np.searchsorted(mids, a, side="left")  # number of midpoints strictly below a
    on_mid = (code < len(mids)) & (a == mids[np.minimum(code, len(mids) - 1)])
    # a exactly on midpoint code -> between code and code+1: take the even one
    code = np.where(on_mid & ((code + 1) % 2 == 0), code + 1, code)
    q = full[code] * np.sign(x)
    return q.astype(np.float32)


def fmt_values(fmt, tensor):
    if fmt == "fp32":
        return None, 32
    if fmt.startswith("lp<"):
        n, es, rs, sf = [int(t) for t in fmt[3:-1].split(",")]
        return lp_values(n, es, rs, sf), n
    if fmt.startswith("int<"):
        k = int(fmt[4:-1])
        amax = float(np.abs(tensor).max())
        return int_values(k, amax / ((1 << (k - 1)) - 1)), k
    raise ValueError(fmt)


def infonce(q, p):
    q = q.reshape(q.shape[0], -1).astype(np.float64)
    p = p.reshape(p.shape[0], -1).astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=1, keepdims=True)
    s = q @ p.T / T
    m = s.max(axis=1, keepdims=True)
    return float(np.mean(m[:, 0] + np.log(np.exp(s - m).sum(axis=1)) - np.diag(s)))


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x, hooks=None):
        outs = []
        layers = [(self.conv1, True), (self.conv2, True)]
        for i, (conv, relu) in enumerate(layers):
            xin = hooks["in"][i](x) if hooks else x
            w = hooks["w"][i](conv.weight) if hooks else conv.weight
            x = torch.relu(nn.functional.conv2d(xin, w, conv.bias, conv.stride, conv.padding))
            outs.append(x)
        x = x.mean(dim=(2, 3))
        xin = hooks["in"][2](x) if hooks else x
        w = hooks["w"][2](self.fc.weight) if hooks else self.fc.weight
        x = nn.functional.linear(xin, w, self.fc.bias)
        outs.append(x)
        return x, outs


def main():
    torch.manual_seed(11)
    m = Small().eval()
    x = torch.randn(B, 1, 12, 12)
    names = ["/inner/Conv", "/inner/Conv_1", "/inner/Gemm"]  # the node names torch.onnx gives the functional calls
    config = {
        "version": 1,
        "default": {"w": "lp<6,1,3,4>", "a": "lp<8,2,2,0>"},
        "layers": [
            {"name": names[0], "a": "fp32", "w": "lp<5,0,2,3>"},
            {"name": names[1], "w": "int<4>", "a": "lp<6,1,3,1>"},
        ],
    }
    wf = ["lp<5,0,2,3>", "int<4>", "lp<6,1,3,4>"]
    af = ["fp32", "lp<6,1,3,1>", "lp<8,2,2,0>"]
    with torch.no_grad():
        yfp, fp_outs = m(x)
        # activation INT scales would come from the FP input; LP needs none
        def wq(i):
            def f(w):
                vals, _ = fmt_values(wf[i], w.numpy())
                return w if vals is None else torch.from_numpy(quantize(w.numpy(), vals))
            return f

        def aq(i):
            def f(t):
                vals, _ = fmt_values(af[i], t.numpy())
                return t if vals is None else torch.from_numpy(quantize(t.numpy(), vals))
            return f
        hooks = {"w": [wq(i) for i in range(3)], "in": [aq(i) for i in range(3)]}
        yq, q_outs = m(x, hooks)
    g = infonce(yq.numpy(), yfp.numpy())
    local = [infonce(q.numpy(), p.numpy()) for q, p in zip(q_outs, fp_outs)]
    counts = [m.conv1.weight.numel(), m.conv2.weight.numel(), m.fc.weight.numel()]
    bits = [fmt_values(f, np.zeros(1) + 1)[1] for f in wf]
    expected = {
        "temperature": T,
        "batch": B,
        "l_co_global": g,
        "l_co_local": float(np.mean(local)),
        "l_co": g + float(np.mean(local)),
        "local": local,
        "mean_weight_bits": float(np.dot(counts, bits) / np.sum(counts)),
        "fp32_self": infonce(yfp.numpy(), yfp.numpy())
        + float(np.mean([infonce(p.numpy(), p.numpy()) for p in fp_outs])),
        "made_by": "tools/score_reference.py (torch %s, numpy %s)" % (torch.__version__, np.__version__),
    }
    class Logits(nn.Module):  # the export sees the logits only
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            return self.inner(t)[0]

    torch.onnx.export(Logits(m), x, os.path.join(FIX, "score_small.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    np.save(os.path.join(FIX, "score_small_x.npy"), x.numpy())
    with open(os.path.join(FIX, "score_small_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(FIX, "score_small_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
