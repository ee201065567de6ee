#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/NAME/ (run from the
repository root; the files are committed, this script says how they were made).
The onnx target's seeds are not here: tests/fuzz/run.sh copies tests/fixtures/*.onnx and ONNX's
node test models at run time."""
import gzip
import io
import json
import os
import struct

import numpy as np

ROOT = "tests/fuzz/corpus"


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def npy(a, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def idx(a, code):
    dt = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(">%dI" % a.ndim, *a.shape)
    return head + a.astype(dt).tobytes()


def arrays():
    rng = np.random.default_rng(9)
    put("array", "f32_2x3.npy", npy(rng.standard_normal((2, 3)).astype(np.float32)))
    put("array", "f64_3d.npy", npy(rng.standard_normal((2, 2, 2))))
    put("array", "i64_labels.npy", npy(np.arange(5, dtype=np.int64)))
    put("array", "u8_v2.npy", npy(np.arange(6, dtype=np.uint8).reshape(2, 3), version=(2, 0)))
    put("array", "bool_scalar.npy", npy(np.array(True)))
    put("array", "i32_empty.npy", npy(np.zeros((0, 4), dtype=np.int32)))
    put("array", "f32_fortran.npy", npy(np.asfortranarray(np.ones((2, 2), np.float32))))
    img = rng.integers(0, 256, (2, 4, 4)).astype(np.uint8)
    put("array", "u8_images.idx", idx(img, 0x08))
    put("array", "u8_images.idx.gz", gzip.compress(idx(img, 0x08), mtime=0))
    put("array", "u8_labels.idx", idx(np.arange(4, dtype=np.uint8), 0x08))
    put("array", "i8.idx", idx(np.array([-1, 2, -3], np.int8), 0x09))
    put("array", "i16.idx", idx(np.array([[-300, 2], [7, 1000]]), 0x0B))
    put("array", "i32.idx", idx(np.array([1 << 20, -5]), 0x0C))
    put("array", "f32.idx", idx(np.array([0.5, -2.0]), 0x0D))
    put("array", "f64.idx.gz", gzip.compress(idx(np.array([[1.5], [3.0]]), 0x0E), mtime=0))


def formats():
    for i, text in enumerate(["lp<8,2,2,0>", "LP<6, 1, 3, -1>", "lp<6,1,3,auto>", "lp<16,4,15,-64>",
                              "lp<2,0,1,64>", "fp32", "int<8>", "int4_ch", "int<4,ch>", "posit8",
                              "posit<6,1>", "afloat<8,3>", "fp8_e4m3", "fp8_e5m2", "fp8",
                              "minifloat<2,3>", "int8"]):
        put("formats", "%02d.txt" % i, text)


def configs():
    with open("tests/fixtures/score_small_config.json", "rb") as f:
        put("config", "score_small.json", f.read())
    put("config", "minimal.json", '{"version":1}')
    put("config", "by_index.json", json.dumps({
        "version": 1, "default": {"w": "int8", "a": "fp32"}, "comment": "seed",
        "layers": [{"index": 0, "w": "lp<6,1,3,auto>"}, {"index": 3, "a": "int<8>"},
                   {"name": "fc", "index": 4, "w": "posit<8,2>", "a": "fp8_e4m3"}]}))
    put("config", "names.json", json.dumps({
        "version": 1, "model": "resnet18",
        "layers": [{"name": "conv1", "w": "int<4,ch>"}, {"name": "layer1.0.conv1", "w": "afloat<8,3>"},
                   {"name": "layer1.0.conv2", "a": "minifloat<4,3>"}, {"name": "", "w": "lp<4,0,1,2>"}]}))


def settings():
    put("settings", "empty.json", "{}")
    put("settings", "full.json", json.dumps({
        "model": "a" * 64, "data": "b" * 64, "labels": "c" * 64, "seed": 7, "mode": "scalar",
        "lambda": 0.5, "population": 8, "siblings": 3, "generations": 4, "max_evaluations": 100,
        "max_seconds": 60.5, "patience": 2, "objective": "latency",
        "constraints": {"mean_weight_bits_max": 5.5, "act_bits_max": 8, "latency_s_max": 0.01},
        "calib": 32, "temperature": 0.25, "norm": [0.1307, 0.3081], "bits": [3, 6],
        "act_bits": [4, 8], "es": [0, 2], "sf_window": 3, "weight_only": True, "pin_ends": False,
        "name": "seed job"}))
    put("settings", "energy.json", '{"objective":"energy","bits":[2,8],"constraints":{}}')
    put("settings", "edp.json", '{"objective":"edp","mode":"pareto","norm":[0,1]}')


def api():
    def line(method, params=None, id=1):
        req = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            req["params"] = params
        return json.dumps(req, separators=(",", ":"))
    h = "0123456789abcdef" * 4
    put("api", "stats.txt", line("server.stats"))
    put("api", "auth.txt", line("auth", {"token": "x" * 16}))
    put("api", "submit.txt", line("job.submit", {
        "model": {"hash": h}, "data": {"path": "/data/x.npy"}, "labels": None, "seed": 3,
        "name": "seed", "settings": {"mode": "pareto", "population": 8, "lambda": 1.5}}))
    put("api", "get.txt", line("job.get", {"job": 1}) + "\n" + line("job.list", {}, "a"))
    put("api", "cancel.txt", line("job.cancel", {"job": 2}, None))
    put("api", "query.txt", line("db.query", {"table": "evaluations", "columns": ["job", "genome"],
                                              "where": {"job": 1, "ok": True}, "limit": 5}))
    put("api", "batch.txt", "[" + line("db.tables") + "," + line("worker.list", {}, 2) + ","
        + '{"jsonrpc":"2.0","method":"job.pareto","params":{"job":1}}]')
    put("api", "blob.txt", line("blob.put", {"base64": "aGVsbG8="}))
    put("api", "notify.txt", '{"jsonrpc":"2.0","method":"job.watch","params":{"job":1}}\r\n'
        + line("job.export", {"job": 1}, 9.5))
    put("api", "bad.txt", '{"jsonrpc":"1.0"}\n[]\n[1,2]\n{"jsonrpc":"2.0","method":"nope"}\n{')


def wire():
    def s(text):
        b = text.encode()
        return struct.pack("<I", len(b)) + b

    def msg(t, payload=b""):
        return b"LQ\x01" + bytes([t]) + payload
    h = "0123456789abcdef" * 4
    put("wire", "ready", msg(1, s("w1") + s("host") + struct.pack("<II", 42, 4) + s("synthetic,lpq")
                             + s("0.1")))
    for t, name in ((2, "heartbeat"), (7, "bye"), (8, "disconnect")):
        put("wire", name, msg(t))
    layers = bytes([8, 2, 2, 0, 6, 1, 3, 0xff]) + bytes([0, 0, 0, 0, 16, 4, 15, 0xc0])
    put("wire", "task", msg(3, struct.pack("<Qq", 7, 1) + s(h) + s(h) + s("")
                            + s('{"temperature":0.5}') + struct.pack("<I", 2) + layers))
    put("wire", "task_empty", msg(3, struct.pack("<Qq", 0, -1) + s("") + s("") + s("") + s("")
                                  + struct.pack("<I", 0)))
    vals = [0.5, 0.3, 0.2, 0.25, 5.5, 8.0, float("nan"), 1e-3, 2e6, float("nan"), 12.0, 0.0]
    put("wire", "result", msg(4, struct.pack("<QI", 7, 0) + s("") + struct.pack("<12d", *vals)))
    put("wire", "result_error", msg(4, struct.pack("<Qi", 8, -6) + s("unsupported op")
                                    + struct.pack("<12d", *vals)))
    put("wire", "blob_get", msg(5, s(h) + struct.pack("<QI", 0, 1 << 20)))
    put("wire", "blob", msg(6, s(h) + struct.pack("<I", 0) + s("") + struct.pack("<QQI", 10, 4, 3)
                            + b"abc"))
    put("wire", "blob_missing", msg(6, s(h) + struct.pack("<i", -8) + s("no such blob")
                                    + struct.pack("<QQI", 0, 0, 0)))


arrays()
wire()
formats()
configs()
settings()
api()
