#!/usr/bin/env python3
"""Cross-check: does onnxruntime predict what tract predicts for an ONNX model?

    python3 scripts/cross_check_ort.py MODEL.onnx [--edgefit PATH] [--limit N]

For a model written by `edgefit prune` (or any single-input image classifier with
the bundled models' 1x1x28x28 input): runs `edgefit evaluate MODEL --predictions F`
(tract, f32) and onnxruntime's CPU execution provider on the same Fashion-MNIST test
images (`models/data/t10k-*`, pixel/255), and compares the top-1 class per image.
Prints the agreement and, for every image where they differ, both classes and the
gap between ORT's two highest logits (a disagreement on a near-tie is float rounding,
not a broken model). Exits 1 if fewer than 99.9% agree.

Needs: pip install onnxruntime numpy. The edgefit binary defaults to the one
`cargo build` puts in $CARGO_TARGET_DIR (or ~/.cache/edgefit/target)/debug.
"""
import argparse
import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/edgefit/target"))
    ap.add_argument("--edgefit", default=os.path.join(target, "debug", "edgefit"))
    ap.add_argument("--limit", type=int, default=10000)
    args = ap.parse_args()

    images = load_idx(os.path.join(ROOT, "models/data/t10k-images-idx3-ubyte.gz"))[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        pred_file = os.path.join(tmp, "tract.txt")
        subprocess.run(
            [args.edgefit, "evaluate", args.model, "--limit", str(len(images)),
             "--predictions", pred_file],
            check=True, stdout=subprocess.DEVNULL)
        with open(pred_file) as f:
            tract = [int(line) for line in f]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    differ = []
    for i, img in enumerate(images):
        x = (img.astype(np.float32) / 255.0).reshape(1, 1, *img.shape)
        logits = sess.run(None, {name: x})[0].reshape(-1)
        top2 = np.argsort(logits)[-2:]
        if int(top2[1]) != tract[i]:
            differ.append((i, tract[i], int(top2[1]), float(logits[top2[1]] - logits[top2[0]])))
    agree = 1.0 - len(differ) / len(images)
    print(f"{args.model}: tract and onnxruntime agree on {len(images) - len(differ)} / "
          f"{len(images)} images ({100 * agree:.2f}%)")
    for i, t, o, gap in differ[:20]:
        print(f"  image {i}: tract {t}, onnxruntime {o} (ORT top-2 logit gap {gap:.2e})")
    sys.exit(0 if agree >= 0.999 else 1)


if __name__ == "__main__":
    main()
