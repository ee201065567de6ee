#!/usr/bin/python3
"""Time PyTorch (eager, CPU) on one benchmark model: prints one JSON object with median_batch_ms.

Usage: torch_bench.py MODEL INPUT.npy THREADS RUNS WARMUP
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import build  # noqa: E402  (same seeded weights as the exported ONNX file)


def main():
    name, data, threads, runs, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    model = build(name)
    x = torch.from_numpy(np.load(data))
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"engine": "pytorch", "version": torch.__version__, "model": name,
                      "threads": threads, "runs": runs, "median_batch_ms": statistics.median(times),
                      "min_batch_ms": min(times)}))


if __name__ == "__main__":
    main()
