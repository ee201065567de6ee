#!/usr/bin/python3
"""Export the speed benchmark's models and input (offline; /usr/bin/python3 with Debian's torch).

torchvision resnet18 and mobilenet_v2 with random weights (seeded), 224x224, batch 8, opset 13,
to OUT/NAME.onnx, and a random input OUT/input.npy (float32 [8,3,224,224]). The batch is fixed
in the file: every engine then sees the same static shapes.
"""
import argparse
import os

import numpy as np
import onnx
import torch
import torchvision

BATCH = 8
SEED = 1234
MODELS = {"resnet18": torchvision.models.resnet18, "mobilenet_v2": torchvision.models.mobilenet_v2}


def build(name):
    """The model with the same random weights on every call (torch_bench.py relies on it)."""
    torch.manual_seed(SEED)
    return MODELS[name](weights=None).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    x = np.random.RandomState(SEED).standard_normal((BATCH, 3, 224, 224)).astype(np.float32)
    np.save(os.path.join(args.out, "input.npy"), x)
    for name in MODELS:
        path = os.path.join(args.out, name + ".onnx")
        torch.onnx.export(build(name), torch.from_numpy(x), path, opset_version=13,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True)
        onnx.checker.check_model(onnx.load(path))
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
