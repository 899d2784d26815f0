#!/usr/bin/env python3
"""edgefit's preprocessing against PIL + torchvision on real PNG and JPEG files.

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch torchvision pillow numpy
    cargo build -p edgefit --bin edgefit
    /tmp/venv-torch/bin/python scripts/check_preprocess.py [--edgefit PATH]

Writes test images with PIL (photo-like: smooth gradients, edges and noise;
RGB, RGBA and gray; PNG and JPEG at quality 90; sizes from 37x53 to
300x411), runs torchvision's transforms and `edgefit preprocess` with the same
recipe on the same files, and prints the largest difference per recipe and
format, in normalised units and in pixel units (difference x std / scale).

Recipes: the ImageNet one (Resize(256), CenterCrop(224), ToTensor, Normalize),
an exact resize to 32x32, a centre crop without resizing, grayscale, BGR and
NHWC. Bilinear resizing is PIL's algorithm (what torchvision runs on PIL
images); crop, scale, mean/std and channel order are exact.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def photo(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / (w / 3.1) + seed) * np.cos(y / (h / 2.3))
    g = 128 + 90 * np.cos((x + y) / (w / 4.7))
    b = np.where((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 3) ** 2, 220.0, 40.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images(d):
    files = []
    for i, (h, w) in enumerate([(300, 411), (257, 256), (37, 53), (224, 224), (120, 90)]):
        a = photo(h, w, i)
        png = os.path.join(d, f"p{i}.png")
        Image.fromarray(a).save(png)
        files.append(("png", png))
        jpg = os.path.join(d, f"p{i}.jpg")
        Image.fromarray(a).save(jpg, quality=90)
        files.append(("jpeg", jpg))
    rgba = os.path.join(d, "rgba.png")
    Image.fromarray(np.dstack([photo(64, 80, 7), np.full((64, 80), 128, np.uint8)])).save(rgba)
    files.append(("png", rgba))
    gray = os.path.join(d, "gray.png")
    Image.fromarray(photo(64, 80, 8)[:, :, 0]).save(gray)
    files.append(("png", gray))
    return files


def reference(path, recipe):
    import torch
    from torchvision import transforms as T

    img = Image.open(path)
    img = img.convert("L" if recipe["channels"] == "gray" else "RGB")
    ts = []
    if "resize" in recipe:
        r = recipe["resize"]
        ts.append(T.Resize(r if isinstance(r, int) else tuple(r),
                           interpolation=T.InterpolationMode.BILINEAR, antialias=True))
    if "crop" in recipe:
        ts.append(T.CenterCrop(recipe["crop"]))
    ts.append(T.ToTensor())
    if "mean" in recipe:
        ts.append(T.Normalize(recipe["mean"], recipe["std"]))
    t = T.Compose(ts)(img)
    if recipe["channels"] == "bgr":
        t = t.flip(0)
    if recipe.get("layout") == "nhwc":
        t = t.permute(1, 2, 0)
    return t.numpy()


def flags(recipe):
    f = ["--channels", recipe["channels"]]
    if "resize" in recipe:
        r = recipe["resize"]
        f += ["--resize", str(r) if isinstance(r, int) else f"{r[0]},{r[1]}"]
    if "crop" in recipe:
        f += ["--crop", str(recipe["crop"])]
    if "mean" in recipe:
        f += ["--mean", ",".join(map(str, recipe["mean"])), "--std", ",".join(map(str, recipe["std"]))]
    if recipe.get("layout") == "nhwc":
        f += ["--layout", "nhwc"]
    return f


RECIPES = {
    "imagenet (resize 256, crop 224, mean/std)": dict(
        resize=256, crop=224, channels="rgb", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
        shape=(3, 224, 224)),
    "exact resize 32x32": dict(resize=[32, 32], channels="rgb", shape=(3, 32, 32)),
    "centre crop 33 (no resize)": dict(crop=33, channels="rgb", shape=(3, 33, 33)),
    "gray, resize 28x28": dict(resize=[28, 28], channels="gray", shape=(1, 28, 28)),
    "bgr, NHWC, resize 40 + crop 32": dict(resize=40, crop=32, channels="bgr", layout="nhwc",
                                           shape=(32, 32, 3)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edgefit", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/edgefit/target")),
        "debug", "edgefit"))
    args = ap.parse_args()
    import torchvision
    import PIL
    print(f"PIL {PIL.__version__}, torchvision {torchvision.__version__}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as d:
        files = make_images(d)
        print(f"{'recipe':44} {'format':6} {'images':>6} {'max |diff| normalised':>22} "
              f"{'max, pixel units':>17} {'mean, pixel units':>18}")
        for name, recipe in RECIPES.items():
            for fmt in ("png", "jpeg"):
                paths = [p for f, p in files if f == fmt]
                if "crop" in recipe and "resize" not in recipe:
                    paths = [p for p in paths if min(Image.open(p).size) >= recipe["crop"]]
                out = os.path.join(d, "t.npy")
                shape = recipe["shape"]
                full = [1, *shape]
                cmd = [args.edgefit, "preprocess", *paths, "--input-shape", ",".join(map(str, full)),
                       *flags(recipe), "--out", out]
                subprocess.run(cmd, check=True, capture_output=True)
                ours = np.load(out)
                ref = np.stack([reference(p, recipe) for p in paths])
                diff = np.abs(ours - ref)
                std = np.array(recipe.get("std", [1.0]), np.float32)
                if recipe.get("layout") == "nhwc":
                    px = diff * std.reshape(1, 1, 1, -1) * 255
                else:
                    px = diff * std.reshape(1, -1, 1, 1) * 255
                print(f"{name:44} {fmt:6} {len(paths):>6} {diff.max():>22.6f} {px.max():>17.3f} "
                      f"{px.mean():>18.4f}")
                if fmt == "png":
                    worst = max(worst, float(px.max()))
    print(f"worst over PNG (decoding identical): {worst:.3f} pixel units (limit 2)")
    return 0 if worst <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
