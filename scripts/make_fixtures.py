#!/usr/bin/env python3
"""Write the small ONNX files the tests use for bad or unusual input (models/fixtures/).

    python3 scripts/make_fixtures.py

* `resize.onnx`: Conv -> Resize, an op edgefit does not support (must be refused by name).
* `lstm.onnx`: a single LSTM node (likewise).
* `depthwise-clip.onnx`: Conv -> depthwise Conv (group = channels) -> Clip(0, 6) ->
  GlobalAveragePool -> Flatten -> MatMul + Add -> Softmax, to check grouped convs,
  Clip, MatMul-as-dense and Softmax import.
* `imagenet-tiny.onnx`: a 1x3x224x224 input and 1,000 classes with tiny weights
  (stem conv 7x7/4, max pool, conv, global pool, Gemm): the road of an
  ImageNet-sized export with the imagenet recipe.
Built with the `onnx` helper API; weights are seeded random.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "models", "fixtures")
rng = np.random.default_rng(7)


def init(name, shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgefit-fixtures")
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, name))
    print("wrote", name)


def main():
    os.makedirs(OUT, exist_ok=True)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])

    # Conv then Resize (nearest, x2): Resize is outside edgefit's op set.
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 16, 16])
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv0", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c", "", "scales"], ["output"], name="upsample", mode="nearest"),
    ]
    save(helper.make_graph(nodes, "resize", [x], [y], [init("w", [4, 1, 3, 3]), scales]), "resize.onnx")

    # A lone LSTM over a sequence.
    xs = helper.make_tensor_value_info("input", TensorProto.FLOAT, [5, 1, 8])
    ys = helper.make_tensor_value_info("output", TensorProto.FLOAT, [5, 1, 1, 16])
    nodes = [helper.make_node("LSTM", ["input", "W", "R"], ["output"], name="lstm0", hidden_size=16)]
    save(helper.make_graph(nodes, "lstm", [xs], [ys], [init("W", [1, 64, 8]), init("R", [1, 64, 16])]), "lstm.onnx")

    # Grouped / depthwise conv, Clip (ReLU6), MatMul + Add as a dense layer, Softmax.
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])
    nodes = [
        helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="conv0", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["c0", "w1"], ["c1"], name="dw1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="relu6"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("MatMul", ["f", "wd"], ["m"], name="fc_matmul"),
        helper.make_node("Add", ["m", "bd"], ["logits"], name="fc_bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    inits = [init("w0", [8, 1, 3, 3]), init("b0", [8]), init("w1", [8, 1, 3, 3]),
             numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi"),
             init("wd", [8, 10]), init("bd", [10])]
    save(helper.make_graph(nodes, "depthwise_clip", [x], [y], inits), "depthwise-clip.onnx")

    # ImageNet-sized input (1x3x224x224, 1,000 classes), tiny weights: the
    # road a user's VGG/ResNet export takes (imagenet recipe, 1,000 classes).
    xi = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    yi = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])
    small = lambda name, shape: numpy_helper.from_array(
        (rng.standard_normal(shape) * 0.2).astype(np.float32), name)
    nodes = [
        helper.make_node("Conv", ["input", "w0", "b0"], ["c0"], name="stem", kernel_shape=[7, 7],
                         pads=[3, 3, 3, 3], strides=[4, 4]),
        helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
        helper.make_node("MaxPool", ["r0"], ["p0"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p0", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    inits = [small("w0", [8, 3, 7, 7]), small("b0", [8]), small("w1", [16, 8, 3, 3]),
             small("b1", [16]), small("wf", [1000, 16]), small("bf", [1000])]
    save(helper.make_graph(nodes, "imagenet_tiny", [xi], [yi], inits), "imagenet-tiny.onnx")


if __name__ == "__main__":
    main()
