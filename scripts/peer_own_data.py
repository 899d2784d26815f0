#!/usr/bin/env python3
"""Your own model and images, end to end, against onnxruntime.

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch torchvision onnx onnxruntime pillow numpy
    cargo build -p edgefit --bin edgefit
    /tmp/venv-torch/bin/python scripts/peer_own_data.py [--work DIR] [--edgefit PATH]

1. Makes a labelled RGB image folder as a user would have one: 10 classes of
   coloured shapes on textured backgrounds (seeded), 40x48 pixels, JPEG and
   PNG, a train folder and a test folder (ImageFolder layout).
2. Trains a small ResNet-style CNN on it in PyTorch with torchvision's
   ImageNet-style preprocessing (Resize(36), CenterCrop(32), ToTensor,
   Normalize(ImageNet mean, std)) and exports it to ONNX (opset 13).
3. onnxruntime predicts the test folder, preprocessed by PIL + torchvision.
4. `edgefit evaluate model.onnx --data test/` (tract, f32) with the same
   recipe as flags; predictions compared image for image.
5. `edgefit compile --calib train/` (int8, the recipe recorded in the plan),
   then `edgefit evaluate plan.efp --data test/` with no flags: int8 accuracy
   against f32.

Prints the agreement and the accuracies; exits 1 if tract and onnxruntime
disagree on more than 0.5% of the images or int8 is more than 0.5 points
below f32.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ["circle-red", "circle-green", "circle-blue", "square-red", "square-green",
           "square-blue", "triangle-red", "triangle-green", "triangle-blue", "cross-gray"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def draw(label, rng):
    h, w = 40, 48
    bg = rng.integers(40, 200, 3)
    noise = rng.normal(0, 18, (h, w, 3))
    img = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    shape, colour = CLASSES[label].split("-")
    base = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210),
            "gray": (128, 128, 128)}[colour]
    c = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in base)
    s = int(rng.integers(8, 14))
    cx, cy = int(rng.integers(s + 4, w - s - 4)), int(rng.integers(s + 2, h - s - 2))
    if shape == "circle":
        d.ellipse([cx - s, cy - s, cx + s, cy + s], fill=c)
    elif shape == "square":
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=c)
    elif shape == "triangle":
        d.polygon([(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)], fill=c)
    else:
        d.rectangle([cx - s, cy - 3, cx + s, cy + 3], fill=c)
        d.rectangle([cx - 3, cy - s, cx + 3, cy + s], fill=c)
    return img


def make_folder(root, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % 10
        d = os.path.join(root, CLASSES[label])
        os.makedirs(d, exist_ok=True)
        ext = "jpg" if i % 3 == 0 else "png"
        draw(label, rng).save(os.path.join(d, f"{i:05}.{ext}"), quality=92)


def transforms():
    from torchvision import transforms as T
    return T.Compose([T.Resize(36), T.CenterCrop(32), T.ToTensor(), T.Normalize(MEAN, STD)])


def train(train_dir, epochs):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torchvision.datasets import ImageFolder

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            return F.relu(self.b2(self.c2(y)) + self.skip(x))

    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    data = ImageFolder(train_dir, transforms())
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for epoch in range(epochs):
        model.train()
        total = correct = 0
        for x, y in loader:
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            total += len(y)
            correct += (out.argmax(1) == y).sum().item()
        print(f"epoch {epoch + 1}: train accuracy {correct / total:.3f}")
    return model.eval()


def edgefit(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"edgefit {' '.join(args)}: {r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/edgefit-own-data")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--edgefit", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/edgefit/target")),
        "debug", "edgefit"))
    args = ap.parse_args()
    import onnxruntime as ort
    import torch
    from torchvision.datasets import ImageFolder

    train_dir, test_dir = os.path.join(args.work, "train"), os.path.join(args.work, "test")
    if not os.path.isdir(test_dir):
        make_folder(train_dir, 3000, 1)
        make_folder(test_dir, 1000, 2)
    model = train(train_dir, args.epochs)
    onnx_path = os.path.join(args.work, "shapes-resnet.onnx")
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), onnx_path, opset_version=13,
                      input_names=["input"], output_names=["logits"], dynamo=False)

    # onnxruntime on PIL + torchvision preprocessing, in ImageFolder order.
    test = ImageFolder(test_dir, transforms())
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ort_pred = [int(np.argmax(sess.run(None, {"input": x.unsqueeze(0).numpy()})[0]))
                for x, _ in test]
    labels = [y for _, y in test.samples]
    ort_acc = float(np.mean(np.array(ort_pred) == np.array(labels)))

    recipe = ["--resize", "36", "--crop", "32", "--mean", ",".join(map(str, MEAN)),
              "--std", ",".join(map(str, STD))]
    preds = os.path.join(args.work, "tract.txt")
    f32 = json.loads(edgefit(args.edgefit, "evaluate", onnx_path, "--data", test_dir, *recipe,
                             "--predictions", preds, "--json"))
    tract_pred = [int(l) for l in open(preds).read().split()]
    same = np.array(tract_pred) == np.array(ort_pred)
    agree = float(np.mean(same))
    is_png = np.array([p.endswith(".png") for p, _ in test.samples])
    plan = os.path.join(args.work, "shapes-resnet-int8.efp")
    edgefit(args.edgefit, "compile", onnx_path, "--calib", train_dir, "--calib-samples", "500",
            "--shuffle-seed", "1", *recipe, "-o", plan)
    int8 = json.loads(edgefit(args.edgefit, "evaluate", plan, "--data", test_dir, "--json"))
    print(f"test images: {len(labels)} ({test_dir})")
    print(f"onnxruntime {ort.__version__} f32 (PIL/torchvision preprocessing): accuracy {ort_acc:.4f}")
    print(f"edgefit tract f32 (edgefit preprocessing):   accuracy {f32['accuracy']:.4f}, "
          f"top-1 predictions equal onnxruntime's on {agree:.4f}")
    print(f"  on PNG files {np.mean(same[is_png]):.4f} ({is_png.sum()}), on JPEG files "
          f"{np.mean(same[~is_png]):.4f} ({(~is_png).sum()}; JPEG decoders differ by a few levels)")
    print(f"edgefit int8 plan (calibrated on 500 train images, recipe from the plan): "
          f"accuracy {int8['accuracy']:.4f} ({(int8['accuracy'] - f32['accuracy']) * 100:+.2f} points)")
    print(f"reading+preprocessing {int8['preprocess_us_per_image']:.1f} us/image, "
          f"inference {int8['latency']['mean_us']:.1f} us/image")
    ok = agree >= 0.995 and int8["accuracy"] >= f32["accuracy"] - 0.005
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
