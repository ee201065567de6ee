#!/usr/bin/python3
"""Decodes the weights of a model written by `lpq export` without lpq or the onnx package:
the documentation (docs/FORMATS.md) and NumPy are enough.

Usage: /usr/bin/python3 tools/read_export.py Q.onnx [--out DIR] [--json]

For every quantized weight it prints the tensor, its storage and format (from the model's
metadata and the encodings JSON it carries) and, with --out, writes DIR/<n>.npy: the decoded
float32 weight in the ONNX weight's own shape, and DIR/index.json naming them. Encoding rules
(docs/FORMATS.md): LP/posit/AdaptivFloat/minifloat weights are codes (uint4, two a byte, the
first in the low nibble; uint8; uint16 little-endian) with a value table at the format's base
scale (the encodings name it; layers of one base format share it), value = table[code] * scale
(the layer's power of two; per channel 2^-sf along the channel axis); int and FP8 weights are DequantizeLinear inputs, value = q * scale (per channel along
`axis`).
"""
import json
import os
import struct
import sys

import numpy as np

# ONNX TensorProto data types used by the export
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64 = 1, 2, 3, 4, 5, 6, 7
FLOAT8E4M3FN, FLOAT8E5M2, UINT4, INT4 = 17, 19, 21, 22


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, wire type, value) of one protobuf message; value is an int or bytes."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        yield num, wt, v


def packed(buf):
    """The varints of a packed repeated field."""
    out, j = [], 0
    while j < len(buf):
        d, j = varint(buf, j)
        out.append(d)
    return out


def tensor(buf):
    """TensorProto: name (8), dims (1), data_type (2), raw_data (9), float_data (4), int32_data (5)."""
    t = {"dims": [], "raw": None, "floats": [], "ints": []}
    for num, wt, v in fields(buf):
        if num == 8:
            t["name"] = v.decode()
        elif num == 1:
            t["dims"] += packed(v) if wt == 2 else [v]
        elif num == 2:
            t["type"] = v
        elif num == 9:
            t["raw"] = bytes(v)
        elif num == 4:
            t["floats"] += list(struct.unpack(f"<{len(v) // 4}f", v)) if wt == 2 else [struct.unpack("<f", v)[0]]
        elif num == 5:
            t["ints"] += packed(v) if wt == 2 else [v]
    return t


def model(path):
    """The initializers (GraphProto field 5 of ModelProto field 7) and metadata_props (14)."""
    buf = open(path, "rb").read()
    inits, meta = {}, {}
    for num, _, v in fields(buf):
        if num == 7:
            for gnum, _, gv in fields(v):
                if gnum == 5:
                    t = tensor(gv)
                    inits[t["name"]] = t
        elif num == 14:
            kv = {n: x.decode() for n, _, x in fields(v)}
            meta[kv.get(1, "")] = kv.get(2, "")
    return inits, meta


def values(t):
    """The tensor's elements as a NumPy array in its shape (4-bit: unpacked, low nibble first)."""
    n = int(np.prod(t["dims"])) if t["dims"] else 1
    ty = t["type"]
    if t["raw"] is None:  # float_data / int32_data
        a = np.array(t["floats"] if ty == FLOAT else t["ints"])
        return a.astype(np.float32 if ty == FLOAT else np.int64).reshape(t["dims"])
    raw = np.frombuffer(t["raw"], dtype=np.uint8)
    if ty in (UINT4, INT4):
        a = np.empty(2 * len(raw), dtype=np.int16)
        a[0::2], a[1::2] = raw & 0x0F, raw >> 4
        a = a[:n]
        if ty == INT4:
            a = np.where(a >= 8, a - 16, a)
        return a.reshape(t["dims"])
    dt = {FLOAT: "<f4", UINT8: "u1", INT8: "i1", UINT16: "<u2", INT16: "<i2", INT32: "<i4",
          INT64: "<i8"}.get(ty)
    if dt is not None:
        return np.frombuffer(t["raw"], dtype=dt).reshape(t["dims"])
    if ty in (FLOAT8E4M3FN, FLOAT8E5M2):
        return fp8(raw, ty).reshape(t["dims"])
    raise ValueError(f"{t['name']}: data type {ty} is not one the export writes")


def fp8(raw, ty):
    """float8e4m3fn (bias 7, no infinities, 0x7F/0xFF NaN) or float8e5m2 (bias 15, IEEE-like)."""
    e_bits, bias = (4, 7) if ty == FLOAT8E4M3FN else (5, 15)
    m_bits = 7 - e_bits
    s = np.where(raw & 0x80, -1.0, 1.0)
    e = (raw >> m_bits) & ((1 << e_bits) - 1)
    m = (raw & ((1 << m_bits) - 1)).astype(np.float64)
    v = np.where(e == 0, m / (1 << m_bits) * 2.0 ** (1 - bias),
                 (1 + m / (1 << m_bits)) * 2.0 ** (e.astype(np.float64) - bias))
    if ty == FLOAT8E4M3FN:
        v = np.where((raw & 0x7F) == 0x7F, np.nan, v)
    else:
        v = np.where(e == 31, np.where(m == 0, np.inf, np.nan), v)
    return (s * v).astype(np.float32)


def broadcast_scale(scale, shape, axis):
    scale = np.asarray(scale, dtype=np.float32)
    if scale.size <= 1:
        return scale.reshape(())
    dims = [1] * len(shape)
    dims[axis] = scale.size
    return scale.reshape(dims)


def decode(path):
    inits, meta = model(path)
    enc = json.loads(meta.get("lpq.encodings", "{}"))
    out = []
    for e in enc.get("tensors", []):
        if e.get("role") != "weight":
            continue
        name = e["tensor"]
        codes = values(inits[e["codes"]])
        scale = values(inits[f"lpq/{name}/scale"]).astype(np.float32)
        if "table" in e:  # LP and the other table formats: a table shared by name
            table = values(inits[e["table"]]).astype(np.float32).reshape(-1)
            w = table[codes.astype(np.int64)] * scale  # scale is shaped to broadcast
        else:  # int and FP8: DequantizeLinear(q, scale), zero point 0, per channel along axis
            w = codes.astype(np.float32) * broadcast_scale(scale, codes.shape, e.get("axis", 0))
        out.append((e, w.astype(np.float32)))
    return out, meta


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    outdir = args[args.index("--out") + 1] if "--out" in args else None
    decoded, meta = decode(args[0])
    index = []
    for k, (e, w) in enumerate(decoded):
        line = {"tensor": e["tensor"], "layer": e.get("layer"), "format": e["format"],
                "storage": e.get("storage"), "shape": list(w.shape),
                "distinct_values": int(np.unique(w[np.isfinite(w)]).size)}
        if outdir:
            os.makedirs(outdir, exist_ok=True)
            line["file"] = f"{k}.npy"
            np.save(os.path.join(outdir, line["file"]), w)
        index.append(line)
        if "--json" not in args:
            print(f"{e['tensor']:32s} {e['format']:22s} {str(e.get('storage')):8s} "
                  f"{'x'.join(map(str, w.shape)):16s} {line['distinct_values']} values")
    if outdir:
        json.dump(index, open(os.path.join(outdir, "index.json"), "w"), indent=1)
    if "--json" in args:
        print(json.dumps(index, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
