#!/usr/bin/env python3
"""Train edgefit's two bundled Fashion-MNIST models and export them to ONNX.

    python3 scripts/train_fmnist.py [--data DIR] [--out models] [--epochs N] [--only vgg|resnet]

* `vgg-fmnist`: VGG style - two stacks of 3x3 conv + BN + ReLU with 2x2 max pooling,
  then two dense layers that hold most of the parameters.
* `resnet-fmnist`: ResNet style - a stem conv, three stages of basic residual
  blocks (16/32/64 channels, one block each) with 1x1 stride-2 projection shortcuts,
  global average pooling and one dense layer: MLPerf Tiny's ResNet-8 on a 28x28x1 input.

The data is the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist/). Seeds are fixed; two cores are enough (a few
minutes per epoch at most). The ONNX export keeps a static 1x1x28x28 float input
holding pixel/255 (no mean/std normalisation: the first conv absorbs it), opset 13;
BatchNorm is folded by the exporter (eval mode, constant folding on) - the edgefit
importer also handles unfolded BatchNorm (see export_torchvision.py).

Each model gets a JSON model card next to it with the architecture, parameter count,
MACs, training recipe and the fp32 test accuracy measured here in PyTorch.
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def load_split(data_dir, prefix):
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.copy()).float().div_(255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def conv_bn(cin, cout, stride=1, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VggFmnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, 16), conv_bn(16, 16), nn.MaxPool2d(2),
            conv_bn(16, 32), conv_bn(32, 32), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 256), nn.ReLU(inplace=True), nn.Dropout(0.4), nn.Linear(256, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + skip)


class ResnetFmnist(nn.Module):
    """MLPerf Tiny's ResNet-8 layout; `in_channels=3` on 32x32 is the MLPerf model itself."""

    def __init__(self, in_channels=1, classes=10):
        super().__init__()
        self.stem = conv_bn(in_channels, 16)
        self.stage1 = BasicBlock(16, 16, 1)
        self.stage2 = BasicBlock(16, 32, 2)
        self.stage3 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def count_macs(model, shape=(1, 1, 28, 28)):
    """Multiply-accumulates of conv and dense layers (as torchvision counts GFLOPS)."""
    macs = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs[0] += out.numel() * k

    def linear_hook(m, inp, out):
        macs[0] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hooks:
        h.remove()
    return macs[0]


def augment(x, gen):
    """Random horizontal flip and random crop with 2-pixel zero padding, batched."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    out = torch.empty_like(x)
    for ox in range(5):
        for oy in range(5):
            sel = (dx == ox) & (dy == oy)
            if sel.any():
                out[sel] = padded[sel, :, oy:oy + 28, ox:ox + 28]
    return out


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train(name, model, recipe, train_set, test_set):
    xtr, ytr = train_set
    xte, yte = test_set
    gen = torch.Generator().manual_seed(recipe["seed"])
    opt = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=0.9, nesterov=True,
                          weight_decay=recipe["weight_decay"])
    steps_per_epoch = (len(xtr) + recipe["batch"] - 1) // recipe["batch"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], epochs=recipe["epochs"],
                                                steps_per_epoch=steps_per_epoch, pct_start=0.2)
    for epoch in range(recipe["epochs"]):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        total_loss = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * recipe["batch"]:(i + 1) * recipe["batch"]]
            xb = augment(xtr[idx], gen).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=recipe["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item()
        acc = evaluate(model, xte, yte)
        print(f"[{name}] epoch {epoch + 1}/{recipe['epochs']} loss {total_loss / steps_per_epoch:.4f} "
              f"test acc {acc * 100:.2f}% ({time.time() - t0:.0f} s)", flush=True)
    return evaluate(model, xte, yte)


def export(name, model, out_dir, card):
    model.eval()
    path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13, dynamo=False,
                      input_names=["input"], output_names=["logits"], do_constant_folding=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"wrote {path} and its model card", flush=True)


RECIPES = {
    "vgg-fmnist": dict(seed=1, epochs=8, batch=128, lr=0.05, weight_decay=5e-4, label_smoothing=0.1),
    "resnet-fmnist": dict(seed=2, epochs=10, batch=128, lr=0.1, weight_decay=5e-4, label_smoothing=0.1),
}

ARCHITECTURES = {
    "vgg-fmnist": ("VGG style: [conv3x3(16)+BN+ReLU]x2, maxpool2, [conv3x3(32)+BN+ReLU]x2, maxpool2, "
                   "flatten(1568), dense(256)+ReLU, dropout(0.4), dense(10)", VggFmnist),
    "resnet-fmnist": ("ResNet style: stem conv3x3(16)+BN+ReLU; stage1 1 basic block (16); stage2 1 basic "
                      "block (32, stride 2, 1x1 projection); stage3 1 basic block (64, stride 2, 1x1 "
                      "projection); global average pooling; dense(10)", ResnetFmnist),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models"))
    ap.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    ap.add_argument("--only", choices=["vgg", "resnet"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not os.path.isdir(args.data):
        sys.exit(f"Fashion-MNIST not found in {args.data}: apt-get install dataset-fashion-mnist, or pass --data DIR")
    train_set = load_split(args.data, "train")
    test_set = load_split(args.data, "t10k")
    os.makedirs(args.out, exist_ok=True)
    for name, (arch, cls) in ARCHITECTURES.items():
        if args.only and not name.startswith(args.only):
            continue
        recipe = dict(RECIPES[name])
        if args.epochs:
            recipe["epochs"] = args.epochs
        torch.manual_seed(recipe["seed"])
        model = cls().to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters())
        dense = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())
        t0 = time.time()
        acc = train(name, model, recipe, train_set, test_set)
        card = {
            "name": name,
            "architecture": arch,
            "input": {"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32",
                      "preprocessing": "pixel / 255, no mean/std normalisation"},
            "output": {"name": "logits", "shape": [1, 10], "classes": CLASSES},
            "parameters_pytorch": params,
            "parameters_dense_layers": dense,
            "macs": count_macs(model),
            "onnx": {"opset": 13, "batchnorm": "folded into conv by the exporter (eval mode)"},
            "training": {
                "data": "Fashion-MNIST train split (60,000 images), Debian dataset-fashion-mnist",
                "optimizer": "SGD, momentum 0.9, Nesterov",
                "schedule": "one-cycle, 20% warm-up",
                "augmentation": "random horizontal flip, random crop 28x28 from 2-pixel zero padding",
                **recipe,
                "script": "scripts/train_fmnist.py",
                "torch": torch.__version__,
                "train_seconds": round(time.time() - t0),
                "threads": args.threads,
            },
            "fp32_test_accuracy_pytorch": round(acc, 4),
            "evaluation": "Fashion-MNIST t10k (10,000 images), top-1, measured in PyTorch after training",
        }
        print(f"[{name}] params {params} (dense {dense}), MACs {card['macs']}, test acc {acc * 100:.2f}%", flush=True)
        export(name, model, args.out, card)


if __name__ == "__main__":
    main()
