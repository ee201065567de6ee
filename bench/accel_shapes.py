#!/usr/bin/python3
"""Check accel_sim's built-in layer tables against torchvision (offline; not run by make test).

Builds torchvision's resnet50 and vit_b_16 (random weights, 224x224, batch 1), records every
Conv2d and Linear call with forward hooks, adds the attention matmuls (q.k^T and attn.v, which
run inside multi_head_attention_forward and have no module), and compares layer by layer with
`lpq accel --network NAME --json` (names, kinds and multiply-accumulates).
Usage: bench/accel_shapes.py [path/to/lpq]      (default build/bin/lpq)
"""
import json
import subprocess
import sys

import torch
import torchvision


def torch_layers(model, name):
    layers = []

    def hook(mod_name):
        def fn(mod, inp, out):
            if isinstance(mod, torch.nn.Conv2d):
                macs = out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
                layers.append((mod_name, "conv", macs))
            else:
                x = inp[0]
                layers.append((mod_name, "gemm", x.numel() // x.shape[-1] * mod.in_features * mod.out_features))
        return fn

    for n, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook(n))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    if name == "vit_b16":
        # MultiheadAttention runs in_proj, q.k^T, attn.v and out_proj inside
        # F.multi_head_attention_forward, so no hook sees them: take their sizes from the module.
        tokens = model.seq_length
        out = []
        for n, kind, macs in layers:
            if n.endswith(".mlp.0"):
                base = n[: -len("mlp.0")] + "self_attention."
                attn = model.get_submodule(base[:-1])
                d, heads = attn.embed_dim, attn.num_heads
                out.append((base + "in_proj", "gemm", tokens * d * attn.in_proj_weight.shape[0]))
                out.append((base + "q_kT", "matmul", heads * tokens * (d // heads) * tokens))
                out.append((base + "attn_v", "matmul", heads * tokens * tokens * (d // heads)))
                out.append((base + "out_proj", "gemm", tokens * d * attn.out_proj.weight.shape[0]))
            out.append((n, kind, macs))
        layers = out
    return layers


def main():
    lpq = sys.argv[1] if len(sys.argv) > 1 else "build/bin/lpq"
    models = {"resnet50": torchvision.models.resnet50(weights=None),
              "vit_b16": torchvision.models.vit_b_16(weights=None)}
    bad = 0
    for name, model in models.items():
        model.eval()
        ref = torch_layers(model, name)
        ours = json.loads(subprocess.check_output([lpq, "accel", "--network", name, "--json"]))
        got = [(l["name"].replace("encoder_layer_", "encoder.layers.encoder_layer_"), l["macs"])
               for l in ours["accelerators"][0]["layers"]]
        ref_by_name = {n: m for n, _, m in ref}
        mism = [(n, m, ref_by_name.get(n)) for n, m in got if ref_by_name.get(n) != m]
        missing = sorted(set(ref_by_name) - {n for n, _ in got})
        total_ref = sum(m for _, _, m in ref)
        total_got = sum(m for _, m in got)
        print(f"{name}: torchvision {len(ref)} layers {total_ref / 1e9:.4f} GMACs, "
              f"lpq {len(got)} layers {total_got / 1e9:.4f} GMACs, "
              f"{len(mism)} mismatched, {len(missing)} missing")
        for n, m, r in mism[:10]:
            print(f"  {n}: lpq {m} torchvision {r}")
        for n in missing[:10]:
            print(f"  missing: {n}")
        bad += len(mism) + len(missing)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
