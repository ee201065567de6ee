#!/usr/bin/python3
"""Independent reference for lpq's InfoNCE (DESIGN section 2), in NumPy.

Offline only (never run by `make test`): prints the expected losses that
tests/test_loss.c asserts. The matrices are the same closed-form ones the C test builds:
    q[i][j] = sin(0.7*i + 0.3*j + 0.1),  p[i][j] = sin(0.7*i + 0.3*j) + 0.05*cos(1.3*i*j)
Usage: /usr/bin/python3 tools/loss_reference.py
"""
import numpy as np


def matrices(batch, dim):
    i = np.arange(batch, dtype=np.float64)[:, None]
    j = np.arange(dim, dtype=np.float64)[None, :]
    q = np.sin(0.7 * i + 0.3 * j + 0.1)
    p = np.sin(0.7 * i + 0.3 * j) + 0.05 * np.cos(1.3 * i * j)
    return q.astype(np.float32).astype(np.float64), p.astype(np.float32).astype(np.float64)


def infonce(q, p, t):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    s = qn @ pn.T / t
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    return float(np.mean(lse - np.diag(s)))


if __name__ == "__main__":
    for batch, dim, t in [(8, 5, 0.5), (16, 33, 0.5), (32, 200, 0.1), (4, 3, 2.0)]:
        q, p = matrices(batch, dim)
        print(f"{{{batch}, {dim}, {t}, {infonce(q, p, t):.12f}, {infonce(p, p, t):.12f}}},")
