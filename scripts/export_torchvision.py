#!/usr/bin/env python3
"""Export torchvision's ImageNet VGG and ResNet architectures to ONNX.

    python3 scripts/export_torchvision.py [--graph-only DIR] [--full DIR] [--models vgg16,resnet50]

No weights can be downloaded on the project's machines, so every model has
torchvision's random initialisation (seeded): these exports are for size, memory and
speed work, never for accuracy claims.

Two forms:

* graph-only (`--graph-only`, default `models/imagenet/`, committed): `export_params=False`
  and `do_constant_folding=False`, so the file is a few kB, every weight arrives as a
  graph input with a static shape, and BatchNorm stays a separate node. The exporter
  aliases identical tensors through Identity nodes; `edgefit inspect` counts each
  layer's weights, so the parameter counts match torchvision's own.
* full (`--full`, default `models/full/`, git-ignored, 45-550 MB each): weights
  embedded, BatchNorm folded by the exporter (eval mode), for speed benchmarks.

Input: float32 1x3x224x224 named `input`; output `logits` 1x1000. Opset 13.

`--mlperf DIR` (default `models/mlperf/`, committed) also writes MLPerf Tiny's
image-classification ResNet-8 (CIFAR-10 32x32x3, 16/32/64 channels, 1x1 stride-2
projections; 77,706 parameters and 12,501,632 MACs once BatchNorm is folded) with
seeded random weights and BatchNorm folded: about 300 kB, for the memory comparison
with TensorFlow Lite Micro (55,984-byte arena for the same model).
"""

import argparse
import os

import torch
import torchvision

MODELS = ["vgg11", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50"]
HERE = os.path.dirname(os.path.abspath(__file__))


def build(name):
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def export(model, path, params):
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, opset_version=13, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      export_params=params, do_constant_folding=params)
    print(f"wrote {path} ({os.path.getsize(path):,} bytes)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph-only", default=os.path.join(HERE, "..", "models", "imagenet"),
                    help="folder for graph-only exports ('' to skip)")
    ap.add_argument("--full", default="", help="folder for full exports with weights, e.g. models/full")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--mlperf", default=os.path.join(HERE, "..", "models", "mlperf"),
                    help="folder for MLPerf Tiny's ResNet-8 ('' to skip)")
    args = ap.parse_args()
    if args.mlperf:
        import sys
        sys.path.insert(0, HERE)
        from train_fmnist import ResnetFmnist
        torch.manual_seed(8)
        model = ResnetFmnist(in_channels=3, classes=10).eval()
        # Non-trivial BatchNorm statistics, so folding changes the weights.
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        os.makedirs(args.mlperf, exist_ok=True)
        path = os.path.join(args.mlperf, "resnet8.onnx")
        torch.onnx.export(model, torch.zeros(1, 3, 32, 32), path, opset_version=13, dynamo=False,
                          input_names=["input"], output_names=["logits"])
        print(f"wrote {path} ({os.path.getsize(path):,} bytes)", flush=True)
    for name in args.models.split(","):
        model = build(name)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params:,} parameters (torchvision)", flush=True)
        if args.graph_only:
            os.makedirs(args.graph_only, exist_ok=True)
            export(model, os.path.join(args.graph_only, f"{name}.onnx"), params=False)
        if args.full:
            os.makedirs(args.full, exist_ok=True)
            export(model, os.path.join(args.full, f"{name}.onnx"), params=True)


if __name__ == "__main__":
    main()
