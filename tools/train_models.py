#!/usr/bin/python3
"""Train lpq's bundled Fashion-MNIST models and export them to ONNX (offline; never run by make).

Usage: /usr/bin/python3 tools/train_models.py [--out models] [--models resnet18,mobilenetv2,vit]
       [--train-subset N] [--epochs E] [--threads T]

Reads the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz) with
gzip + numpy, trains each model for a few minutes on the CPU, exports it with torch.onnx.export
(opset 17, input "input" [N,1,28,28] with a dynamic batch, output "logits" [N,10]) and writes,
for each model NAME:
  NAME.onnx               the network
  NAME.json               PyTorch FP32 top-1 on the 10,000 test images, normalisation, opset,
                          training settings and time, torch version
  NAME_ref_logits.npy     float32 [256,10]: PyTorch logits of the first 256 test images
and once: fashion_test_256.npy (float32 [256,1,28,28], normalised), fashion_test_256_labels.npy
(int64 [256]) and fashion_calib_256.npy (256 normalised training images: the first 256 of a
fixed permutation).
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.resnet import BasicBlock

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel mean and std (pixels / 255)
OPSET = 17
SEED = 20240623


def read_idx(path):
    """An IDX file (gzip) as a numpy array; checks the magic and that the sizes agree."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {dims}")
    return body.reshape(dims)


def normalise(images_u8):
    """uint8 [N,28,28] -> float32 [N,1,28,28], (x/255 - MEAN) / STD."""
    x = images_u8.astype(np.float32) / 255.0
    return ((x - MEAN) / STD).astype(np.float32)[:, None, :, :]


# ---- models -------------------------------------------------------------------------------

class ResNet18Small(nn.Module):
    """torchvision's ResNet-18 layout (BasicBlock, [2,2,2,2]) for 28x28 grey images: a 3x3
    stride-1 stem without max-pool and reduced widths, so the file stays small."""

    def __init__(self, widths=(16, 32, 64, 128), num_classes=10):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(1, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[0], 2, stride=1)
        self.layer2 = self._make_layer(widths[1], 2, stride=2)
        self.layer3 = self._make_layer(widths[2], 2, stride=2)
        self.layer4 = self._make_layer(widths[3], 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def mobilenetv2_small(width_mult=0.5, num_classes=10):
    """torchvision's MobileNetV2 with a 1-channel stride-1 stem and strides reduced for 28x28
    (28 -> 14 -> 7 instead of 224 -> 7)."""
    setting = [  # t, c, n, s
        [1, 16, 1, 1],
        [6, 24, 2, 1],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 1],
        [6, 320, 1, 1],
    ]
    m = MobileNetV2(num_classes=num_classes, width_mult=width_mult, inverted_residual_setting=setting)
    stem = m.features[0][0]
    m.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, stride=1, padding=1, bias=False)
    return m


class Attention(nn.Module):
    """Multi-head self-attention written with Linear, MatMul and Softmax so it exports as plain
    ONNX ops (nn.MultiheadAttention's fused fast path does not)."""

    def __init__(self, dim, heads, tokens):
        super().__init__()
        self.heads, self.tokens, self.head_dim = heads, tokens, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        t, h, d = self.tokens, self.heads, self.head_dim
        # -1 for the batch keeps the Reshape shapes constant in the exported graph.
        qkv = self.qkv(x).reshape(-1, t, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax((q @ k.transpose(-2, -1)) * (d ** -0.5), dim=-1)
        out = (att @ v).transpose(1, 2).reshape(-1, t, h * d)
        return self.proj(out)


class Block(nn.Module):
    """Pre-LN encoder block: x + MHA(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim, heads, mlp_dim, tokens):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, tokens)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ViTSmall(nn.Module):
    """A small ViT: conv patch embedding, CLS token, learned position embedding, pre-LN blocks,
    final LN and a linear head on the CLS token."""

    def __init__(self, patch=4, dim=64, depth=4, heads=4, mlp_dim=128, num_classes=10):
        super().__init__()
        tokens = (28 // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_dim, tokens) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, patches, dim]
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# Per model: builder, optimiser settings and the training budget (images, epochs), sized for a
# few minutes each on 2 CPU cores (per image at 28x28, MobileNetV2 costs ~3x ResNet, the ViT ~2x).
MODELS = {
    "resnet18": (lambda: ResNet18Small(), dict(lr=2e-3, weight_decay=5e-4, images=59744, epochs=2)),
    "mobilenetv2": (lambda: mobilenetv2_small(),
                    dict(lr=3e-3, weight_decay=4e-5, images=40000, epochs=2)),
    "vit": (lambda: ViTSmall(), dict(lr=2e-3, weight_decay=5e-2, images=59744, epochs=4)),
}


# ---- training and export --------------------------------------------------------------------

def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train(model, x, y, epochs, batch, lr, weight_decay, log):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(SEED)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb = x[idx]
            # Random horizontal flips: free augmentation that suits clothing images.
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                log(f"  epoch {epoch + 1} step {step}/{steps} loss {loss.item():.4f}")


def export(model, path):
    model.eval()
    dummy = torch.zeros(2, 1, 28, 28)
    torch.onnx.export(model, dummy, path, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    return sorted({n.op_type for n in m.graph.node})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models"))
    ap.add_argument("--models", default="resnet18,mobilenetv2,vit")
    ap.add_argument("--train-subset", type=int, help="training images (default: per model)")
    ap.add_argument("--epochs", type=int, help="epochs (default: per model)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    train_x = normalise(read_idx(f"{DATA_DIR}/train-images-idx3-ubyte.gz"))
    train_y = read_idx(f"{DATA_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    test_x = normalise(read_idx(f"{DATA_DIR}/t10k-images-idx3-ubyte.gz"))
    test_y = read_idx(f"{DATA_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    perm = np.random.RandomState(SEED).permutation(len(train_x))

    np.save(f"{args.out}/fashion_test_256.npy", test_x[:256])
    np.save(f"{args.out}/fashion_test_256_labels.npy", test_y[:256])
    np.save(f"{args.out}/fashion_calib_256.npy", train_x[perm[:256]])
    # Training uses the permutation's next images, so the calibration set is never trained on.
    ex, ey = torch.from_numpy(test_x), torch.from_numpy(test_y)

    for name in args.models.split(","):
        build, hyper = MODELS[name]
        hyper = dict(hyper)
        images = args.train_subset or hyper["images"]
        epochs = args.epochs or hyper["epochs"]
        hyper = {k: v for k, v in hyper.items() if k not in ("images", "epochs")}
        subset = perm[256:256 + images]
        tx, ty = torch.from_numpy(train_x[subset]), torch.from_numpy(train_y[subset])
        torch.manual_seed(SEED)
        np.random.seed(SEED)
        model = build()
        params = sum(p.numel() for p in model.parameters())
        log(f"{name}: {params} parameters, training on {len(tx)} images for {epochs} epochs")
        t0 = time.time()
        train(model, tx, ty, epochs, args.batch, hyper["lr"], hyper["weight_decay"], log)
        train_s = time.time() - t0
        top1 = evaluate(model, ex, ey)
        log(f"{name}: top-1 {top1 * 100:.2f}% after {train_s:.0f} s")
        with torch.no_grad():
            ref = model(ex[:256]).numpy().astype(np.float32)
        np.save(f"{args.out}/{name}_ref_logits.npy", ref)
        ops = export(model, f"{args.out}/{name}.onnx")
        info = {
            "model": name,
            "file": f"{name}.onnx",
            "parameters": params,
            "pytorch_fp32_top1": round(top1 * 100, 2),
            "test_images": len(ex),
            "input": {"name": "input", "shape": ["N", 1, 28, 28], "dtype": "float32"},
            "output": {"name": "logits", "shape": ["N", 10]},
            "normalisation": {"formula": "(pixel / 255 - mean) / std", "mean": MEAN, "std": STD},
            "opset": OPSET,
            "onnx_ops": ops,
            "training": {
                "train_images": len(tx), "epochs": epochs, "batch": args.batch,
                "optimizer": "AdamW", "schedule": "OneCycle", "label_smoothing": 0.05,
                "augmentation": "random horizontal flip", "seed": SEED,
                "threads": args.threads, "seconds": round(train_s, 1), **hyper,
            },
            "ref_logits": f"{name}_ref_logits.npy (first 256 test images)",
            "torch_version": torch.__version__,
            "torchvision_version": torchvision.__version__,
            "onnx_version": onnx.__version__,
        }
        with open(f"{args.out}/{name}.json", "w") as f:
            json.dump(info, f, indent=2)
            f.write("\n")
        log(f"{name}: wrote {name}.onnx ({os.path.getsize(f'{args.out}/{name}.onnx')} bytes), ops {ops}")


if __name__ == "__main__":
    main()
