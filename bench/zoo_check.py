#!/usr/bin/python3
"""lpq's engine on models it was not built around: torchvision's classification and segmentation
zoo with random weights (seeded; no downloads), at odd batch sizes and resolutions, against
PyTorch's own output, with 1 and 2 threads and each kernel set (AVX-512 where the CPU has it,
LPQ_ISA=avx2, LPQ_ISA=generic). Offline: /usr/bin/python3 with Debian's torch, torchvision, onnx.

Usage (from the repository root, after make):
    /usr/bin/python3 bench/zoo_check.py [--out build/bench/zoo] [--lpq build/bin/lpq] [MODEL ...]
Prints one line per model, thread count and kernel set: max |lpq - torch| / max |torch| and
lpq's time per batch, or lpq's error message; exits 1 if any error is above 1e-4 or lpq fails.
With --speed RUNS: instead, lpq's and ONNX Runtime's (bench/engine's onnxruntime-node) median
time per batch over RUNS runs each, at 1 and 2 threads, and their ratio (lpq / ORT); run it on
an idle machine.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision

# name, batch, resolution, kind (cls: logits; seg: the "out" map)
CASES = [
    ("resnet34", 1, 160, "cls"), ("resnet50", 3, 224, "cls"), ("resnext50_32x4d", 1, 224, "cls"),
    ("wide_resnet50_2", 1, 96, "cls"), ("regnet_x_400mf", 3, 224, "cls"),
    ("regnet_y_400mf", 3, 128, "cls"), ("densenet121", 1, 224, "cls"),
    ("googlenet", 1, 224, "cls"), ("inception_v3", 1, 299, "cls"), ("alexnet", 2, 224, "cls"),
    ("squeezenet1_1", 3, 175, "cls"), ("shufflenet_v2_x0_5", 3, 224, "cls"),
    ("mnasnet0_5", 1, 224, "cls"), ("mobilenet_v2", 3, 150, "cls"),
    ("mobilenet_v3_small", 3, 193, "cls"), ("mobilenet_v3_large", 1, 224, "cls"),
    ("efficientnet_b0", 2, 224, "cls"), ("efficientnet_v2_s", 1, 128, "cls"),
    ("convnext_tiny", 1, 96, "cls"), ("swin_t", 1, 224, "cls"), ("resnet18", 5, 257, "cls"),
    ("fcn_resnet50", 1, 96, "seg"), ("lraspp_mobilenet_v3_large", 1, 128, "seg"),
    ("deeplabv3_mobilenet_v3_large", 1, 96, "seg"),
]


class SegOut(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def build(name, kind):
    """The model with seeded random weights and BatchNorm statistics (a fresh BN's mean 0 and
    variance 1 would hide any error in its folding, and can leave a head's output constant)."""
    torch.manual_seed(7)
    kw = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kw.update(aux_logits=False, init_weights=False)  # torch.nn defaults: a live output
    if kind == "seg":
        kw["weights_backbone"] = None
        m = SegOut(getattr(torchvision.models.segmentation, name)(**kw))
    else:
        m = getattr(torchvision.models, name)(**kw)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


def export(out, name, batch, res, kind):
    """OUT/NAME.onnx, NAME_x.npy, NAME_y.npy (PyTorch's output), once."""
    paths = [os.path.join(out, name + s) for s in (".onnx", "_x.npy", "_y.npy")]
    if all(os.path.exists(p) for p in paths):
        return paths
    m = build(name, kind)
    x = np.random.RandomState(3).standard_normal((batch, 3, res, res)).astype(np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    torch.onnx.export(m, torch.from_numpy(x), paths[0], opset_version=13, input_names=["input"],
                      output_names=["output"], do_constant_folding=True)
    np.save(paths[1], x)
    np.save(paths[2], y)
    return paths


def median_ms(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return float("nan")
    return json.loads(r.stdout.strip().splitlines()[-1])["median_batch_ms"]


def speed(a):
    """lpq against ONNX Runtime, the same model and input, 1 and 2 threads."""
    ort = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine", "ort.js")
    print(f"{'model':30s} thr  lpq ms   ORT ms  lpq/ORT")
    for name, batch, res, kind in CASES:
        if a.models and name not in a.models:
            continue
        model, xpath, _ = export(a.out, name, batch, res, kind)
        for threads in (1, 2):
            lpq = median_ms([a.lpq, "run", "--model", model, "--data", xpath, "--batch", str(batch),
                             "--threads", str(threads), "--repeat", str(a.speed), "--json"])
            peer = median_ms(["node", ort, model, xpath, str(threads), str(a.speed), "3"])
            print(f"{name:30s} {threads:3d} {lpq:7.1f} {peer:8.1f} {lpq / peer:8.2f}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench/zoo")
    ap.add_argument("--lpq", default="build/bin/lpq")
    ap.add_argument("--speed", type=int, default=0, metavar="RUNS")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.speed:
        return speed(a)
    bad = 0
    for name, batch, res, kind in CASES:
        if a.models and name not in a.models:
            continue
        model, xpath, ypath = export(a.out, name, batch, res, kind)
        want = np.load(ypath)
        scale = float(np.abs(want).max()) or 1.0
        for threads in (1, 2):
            for isa in ("", "avx2", "generic"):
                got_path = os.path.join(a.out, name + "_lpq.npy")
                env = dict(os.environ, LPQ_ISA=isa)
                r = subprocess.run([a.lpq, "run", "--model", model, "--data", xpath, "--batch",
                                    str(batch), "--threads", str(threads), "--out", got_path,
                                    "--json"], capture_output=True, text=True, env=env)
                label = f"{name:30s} batch {batch} {res}x{res} threads {threads} {isa or 'auto':8s}"
                if r.returncode != 0:
                    print(f"{label} FAILED: {r.stderr.strip().splitlines()[-1]}")
                    bad += 1
                    continue
                got = np.load(got_path).reshape(want.shape)
                err = float(np.abs(got - want).max()) / scale
                ms = json.loads(r.stdout.strip().splitlines()[-1]).get("median_batch_ms", float("nan"))
                flag = "" if err <= 1e-4 else "  <-- above 1e-4"
                bad += err > 1e-4
                print(f"{label} err {err:.1e}  {ms:8.1f} ms{flag}", flush=True)
    print(f"{bad} failures")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
