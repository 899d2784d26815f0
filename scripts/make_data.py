#!/usr/bin/env python3
"""Copy the Fashion-MNIST test split and pick the calibration subset into models/data/.

    python3 scripts/make_data.py [--data DIR] [--out models/data] [--seed 2024]

* `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`: the test split, byte for
  byte as Debian's `dataset-fashion-mnist` ships it. Used only for evaluation.
* `calib-images-idx3-ubyte.gz`, `calib-labels-idx1-ubyte.gz`: 1,000 images of the
  *training* split, 100 per class, chosen with a seeded permutation; `calib-indices.txt`
  lists their indices into the training split. Used only for calibration, so
  calibration and evaluation never see the same image.

Both are gzip IDX files (the format of the original distribution). Needs only numpy.
"""

import argparse
import gzip
import os
import shutil
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def write_idx(path, array):
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    # mtime=0 keeps the file byte-identical across runs.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models", "data"))
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--per-class", type=int, default=100)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        shutil.copyfile(os.path.join(args.data, name), os.path.join(args.out, name))
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    order = np.random.default_rng(args.seed).permutation(len(labels))
    chosen = []
    for cls in range(10):
        chosen.extend(int(i) for i in order[labels[order] == cls][:args.per_class])
    chosen.sort()
    write_idx(os.path.join(args.out, "calib-images-idx3-ubyte.gz"), images[chosen])
    write_idx(os.path.join(args.out, "calib-labels-idx1-ubyte.gz"), labels[chosen])
    with open(os.path.join(args.out, "calib-indices.txt"), "w") as f:
        f.write(f"# indices into the Fashion-MNIST training split, seed {args.seed}, {args.per_class} per class\n")
        f.write("\n".join(map(str, chosen)) + "\n")
    print(f"wrote {len(chosen)} calibration images and the 10,000-image test split to {args.out}")


if __name__ == "__main__":
    main()
