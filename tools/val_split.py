#!/usr/bin/python3
"""A validation split carved from the Fashion-MNIST *training* images (never the test images),
for choosing a searched config: the last COUNT training images, normalised as the bundled
models expect, minus any that is one of the calibration images. Writes float32 images and int64
labels as .npy files. Pure Python (no numpy): offline, for benchmarks.

  /usr/bin/python3 tools/val_split.py OUT_DIR [COUNT]
"""
import array, gzip, struct, sys

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def read_npy_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    hlen, = struct.unpack("<H", raw[8:10])
    body = raw[10 + hlen:]
    a = array.array("f")
    a.frombytes(body)
    return a


def write_npy(path, typecode, descr, shape, values):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(array.array(typecode, values).tobytes())


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    (n, h, w), pixels = read_idx(f"{DATA}/train-images-idx3-ubyte.gz")
    _, labels = read_idx(f"{DATA}/train-labels-idx1-ubyte.gz")
    size = h * w
    calib = read_npy_f32("models/fashion_calib_256.npy")
    calib_keys = {tuple(round(v, 3) for v in calib[i * size:i * size + 16]) for i in range(len(calib) // size)}
    images, ys = [], []
    for i in range(n - 1, -1, -1):
        img = [(p / 255.0 - MEAN) / STD for p in pixels[i * size:(i + 1) * size]]
        if tuple(round(v, 3) for v in img[:16]) in calib_keys and any(v != img[0] for v in img[:16]):
            continue  # a calibration image: kept out of validation
        images.append(img)
        ys.append(labels[i])
        if len(images) == count:
            break
    images.reverse()
    ys.reverse()
    write_npy(f"{out}/fashion_val_{count}.npy", "f", "<f4", (count, 1, h, w),
              [v for img in images for v in img])
    write_npy(f"{out}/fashion_val_{count}_labels.npy", "q", "<i8", (count,), ys)
    print(f"{out}/fashion_val_{count}.npy: {count} training images (the last ones, calibration "
          f"images excluded)")


if __name__ == "__main__":
    main()
