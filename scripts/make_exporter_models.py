#!/usr/bin/env python3
"""Small models from the exporters real users have, checked in as test cases
for host/tests/conformance.rs (which needs no Python): each case folder under
tests/conformance/exporters/ holds model.onnx, input_0.pb and output_0.pb
(TensorProto), the output computed by the exporting framework itself (PyTorch
or TensorFlow), not by an ONNX runtime.

    # PyTorch: the TorchScript exporter at opsets 11, 13, 17 and 20, the dynamo
    # exporter, and onnxsim-simplified opset-13 graphs
    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch onnxscript onnxsim onnx numpy
    /tmp/venv-torch/bin/python scripts/make_exporter_models.py torch

    # Keras 3 on TensorFlow through tf2onnx (NHWC graphs)
    python3 -m venv /tmp/venv-tf
    /tmp/venv-tf/bin/pip install tensorflow-cpu tf2onnx
    /tmp/venv-tf/bin/python scripts/make_exporter_models.py keras

The models are tiny (a few kB) but have the parts the exporters treat
specially: BatchNorm after convs, residual additions, ReLU6 (Clip), max
pooling, global average pooling written three ways (adaptive pooling, a mean
over H and W, Keras' GlobalAveragePooling2D), flattening written three ways
(torch.flatten, x.view(x.size(0), -1) which TorchScript exports as a
Shape/Gather/Unsqueeze/Concat chain, Keras' Flatten on NHWC), dense layers and
a final softmax. Every case's versions are recorded in SOURCE.txt.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "conformance", "exporters")
H = W = 12  # input 1x3x12x12 (Keras: 1x12x12x3)


def write_case(name, model_bytes, x, y, note):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model_bytes)
    model = onnx.load_from_string(model_bytes)
    inits = {t.name for t in model.graph.initializer}
    runtime = [vi.name for vi in model.graph.input if vi.name not in inits]
    assert len(runtime) == 1, f"{name}: inputs {runtime}"
    out_name = model.graph.output[0].name
    for fname, arr, tname in (("input_0.pb", x, runtime[0]), ("output_0.pb", y, out_name)):
        t = numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), tname)
        with open(os.path.join(d, fname), "wb") as f:
            f.write(t.SerializeToString())
    ops = sorted({n.op_type for n in model.graph.node})
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    line = f"{name}: {note}; opset {opset}; {len(model_bytes)} bytes; ops {' '.join(ops)}"
    print(line)
    return line


def torch_cases():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.skip = None
            if stride != 1 or cin != cout:
                self.skip = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = F.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return F.relu(y + (x if self.skip is None else self.skip(x)))

    class TinyResNet(nn.Module):
        """ResNet-8's shape, narrower: stem, two residual blocks, GAP, dense."""

        def __init__(self, pool, flatten, softmax):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU())
            self.b1 = Block(4, 4, 1)
            self.b2 = Block(4, 8, 2)
            self.fc = nn.Linear(8, 10)
            self.pool, self.flatten, self.softmax = pool, flatten, softmax

        def forward(self, x):
            x = self.b2(self.b1(self.stem(x)))
            if self.pool == "adaptive":
                x = F.adaptive_avg_pool2d(x, 1)
            else:  # a mean over H and W, dropping them (ReduceMean keepdims=0)
                x = x.mean((2, 3))
            if self.flatten == "view":
                x = x.view(x.size(0), -1)
            else:
                x = torch.flatten(x, 1)
            x = self.fc(x)
            return F.softmax(x, dim=1) if self.softmax else x

    class TinyVgg(nn.Module):
        """VGG's shape: conv-ReLU6 stacks, max pooling, flatten of a feature map, two dense layers."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(2),
                nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.MaxPool2d(2),
            )
            self.classifier = nn.Sequential(
                nn.Linear(8 * 3 * 3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10)
            )

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    def randomise_bn(m):
        # Trained-looking BatchNorm statistics, so folding them is tested.
        g = torch.Generator().manual_seed(1)
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
        return m.eval()

    torch.manual_seed(0)
    resnet_view = randomise_bn(TinyResNet("adaptive", "view", True))
    resnet_mean = randomise_bn(TinyResNet("mean", "flatten", False))
    vgg = randomise_bn(TinyVgg())
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(2))

    def export(model, **kw):
        import io

        f = io.BytesIO()
        torch.onnx.export(model, (x,), f, input_names=["input"], output_names=["output"], **kw)
        return f.getvalue()

    def dynamo(model):
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"],
                                 output_names=["output"], verbose=False)
        prog.optimize()
        return prog.model_proto.SerializeToString()

    import onnxsim

    def simplified(model_bytes):
        m, ok = onnxsim.simplify(onnx.load_from_string(model_bytes))
        assert ok
        return m.SerializeToString()

    lines = []
    version = f"torch {torch.__version__}"
    with torch.no_grad():
        for tag, model in (("resnet_view", resnet_view), ("resnet_mean", resnet_mean), ("vgg", vgg)):
            y = model(x).numpy()
            for opset in (11, 13, 17, 20):
                b = export(model, opset_version=opset, dynamo=False)
                lines.append(write_case(f"torchscript{opset}_{tag}", b, x.numpy(), y,
                                        f"{version}, TorchScript exporter (dynamo=False)"))
            if tag == "resnet_view":
                # A dynamic batch, as most tutorials export: x.view(x.size(0), -1)
                # becomes Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
                b = export(model, opset_version=13, dynamo=False,
                           dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
                lines.append(write_case(f"torchscript13_dynamic_batch_{tag}", b, x.numpy(), y,
                                        f"{version}, TorchScript exporter, dynamic_axes batch"))
            # onnxsim 0.8 refuses opset 11 graphs ("Function attributes are
            # not implemented for opset <= 11"): simplify the opset-13 export.
            b = export(model, opset_version=13, dynamo=False)
            lines.append(write_case(f"onnxsim_torchscript13_{tag}", simplified(b), x.numpy(), y,
                                    f"{version}, TorchScript exporter, onnxsim {onnxsim.__version__}"))
            lines.append(write_case(f"dynamo_{tag}", dynamo(model), x.numpy(), y,
                                    f"{version}, dynamo exporter (dynamo=True), optimized"))
    return lines


def keras_cases():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx
    from tensorflow import keras
    from tensorflow.keras import layers

    keras.utils.set_random_seed(0)

    def bn(x):
        return layers.BatchNormalization(
            beta_initializer="random_normal", gamma_initializer=keras.initializers.RandomUniform(0.5, 1.5),
            moving_mean_initializer="random_normal",
            moving_variance_initializer=keras.initializers.RandomUniform(0.5, 1.5))(x)

    def resnet8():
        # MLPerf Tiny's Keras ResNet-8 layout (NHWC, 'same' padding, stride-2
        # blocks with a 1x1 shortcut), narrower.
        inp = keras.Input((H, W, 3))
        x = layers.Activation("relu")(bn(layers.Conv2D(4, 3, padding="same")(inp)))
        y = layers.Activation("relu")(bn(layers.Conv2D(4, 3, padding="same")(x)))
        y = bn(layers.Conv2D(4, 3, padding="same")(y))
        x = layers.Activation("relu")(layers.add([x, y]))
        y = layers.Activation("relu")(bn(layers.Conv2D(8, 3, strides=2, padding="same")(x)))
        y = bn(layers.Conv2D(8, 3, padding="same")(y))
        s = layers.Conv2D(8, 1, strides=2, padding="same")(x)
        x = layers.Activation("relu")(layers.add([s, y]))
        x = layers.GlobalAveragePooling2D()(x)
        out = layers.Dense(10, activation="softmax")(x)
        return keras.Model(inp, out)

    def vgg():
        inp = keras.Input((H, W, 3))
        x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
        x = layers.MaxPooling2D(2)(x)
        x = layers.ReLU(max_value=6.0)(bn(layers.Conv2D(8, 3, padding="same")(x)))
        x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)  # NHWC order: tf2onnx keeps a Transpose before it
        x = layers.Dense(16, activation="relu")(x)
        out = layers.Dense(10)(x)
        return keras.Model(inp, out)

    x = np.random.default_rng(2).standard_normal((1, H, W, 3)).astype(np.float32)
    lines = []
    for tag, model in (("resnet8", resnet8()), ("vgg", vgg())):
        y = model(x, training=False).numpy()
        spec = (tf.TensorSpec((1, H, W, 3), tf.float32, name="input"),)
        fn = tf.function(lambda t, m=model: m(t, training=False))
        for opset in (13, 17):
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
            lines.append(write_case(
                f"tf2onnx{opset}_keras_{tag}", proto.SerializeToString(), x, y,
                f"tensorflow {tf.__version__} (Keras {keras.__version__}), tf2onnx {tf2onnx.__version__}"))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("framework", choices=["torch", "keras"])
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    lines = torch_cases() if args.framework == "torch" else keras_cases()
    # SOURCE.txt keeps one section per framework.
    src = os.path.join(OUT, "SOURCE.txt")
    sections = {}
    if os.path.exists(src):
        cur = None
        for line in open(src).read().splitlines():
            if line.startswith("## "):
                cur = line[3:]
                sections[cur] = []
            elif cur is not None and line:
                sections[cur].append(line)
    sections[args.framework] = lines
    with open(src, "w") as f:
        f.write("Made by scripts/make_exporter_models.py; the expected outputs come from the "
                "exporting framework.\n")
        for k in sorted(sections):
            f.write(f"\n## {k}\n" + "\n".join(sections[k]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
