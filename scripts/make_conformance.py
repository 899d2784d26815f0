#!/usr/bin/env python3
"""ONNX's own backend test cases for every op edgefit claims, checked in for
host/tests/conformance.rs (which needs no Python).

    pip install onnx numpy
    python3 scripts/make_conformance.py            # rewrites tests/conformance/onnx/

Sources, both from the `onnx` package: the node tests
(`onnx.backend.test.case.node`, generated here exactly as ONNX's
`backend-test-tools generate-data` does) and the PyTorch-converted and
PyTorch-operator cases the package ships under onnx/backend/test/data/.
A case is taken when every op in its graph is one edgefit claims
(host/src/import/mod.rs SUPPORTED_OPS).

One transformation: ONNX's node tests pass weights, biases, shapes and clip
bounds as extra graph inputs. edgefit plans take one input and weights that are
part of the model, so every graph input after the first becomes an initializer
holding the case's own value for it (recorded in the case's `folded.txt`). The
first input stays the runtime input; expected outputs are unchanged.

Each case folder holds model.onnx, input_0.pb, output_0.pb (TensorProto, the
first data set) and, where inputs were folded, folded.txt.
"""

import argparse
import os
import shutil
import sys

import onnx
from onnx import numpy_helper

# Cases with a larger input (a few 3-D pooling cases) are left out to keep the
# repository small; they are listed in SOURCE.txt.
MAX_INPUT_BYTES = 256 * 1024

CLAIMED = {
    "Conv", "BatchNormalization", "Gemm", "MatMul", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Add", "Relu", "Clip", "Flatten", "Reshape", "Softmax",
    "Transpose", "Identity", "Dropout", "Constant", "ReduceMean", "Squeeze",
    "Unsqueeze", "Shape", "Gather", "Concat", "Cast",
}


def claimed(model):
    ops = {n.op_type for n in model.graph.node}
    return bool(ops) and ops <= CLAIMED


def to_tensor(value, name):
    if isinstance(value, onnx.TensorProto):
        return value
    return numpy_helper.from_array(value, name)


def write_case(out_dir, model, inputs, outputs):
    """Folds inputs 1.. into initializers; writes the case. False if skipped."""
    graph = model.graph
    # Older exports also list their initializers as graph inputs.
    inits = {t.name for t in graph.initializer}
    runtime = [vi for vi in graph.input if vi.name not in inits]
    if not inputs or len(inputs) != len(runtime) or not outputs:
        return False
    if not runtime[0].type.HasField("tensor_type") or isinstance(inputs[0], (list, dict)):
        return False
    first = to_tensor(inputs[0], runtime[0].name).SerializeToString()
    if len(first) > MAX_INPUT_BYTES:
        return "size"
    folded = []
    for value, vi in list(zip(inputs, runtime))[1:]:
        if not vi.type.HasField("tensor_type") or isinstance(value, (list, dict)):
            return False
        graph.initializer.append(to_tensor(value, vi.name))
        folded.append(vi.name)
    keep = [vi for vi in graph.input if vi.name not in folded]
    del graph.input[:]
    graph.input.extend(keep)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    with open(os.path.join(out_dir, "input_0.pb"), "wb") as f:
        f.write(first)
    with open(os.path.join(out_dir, "output_0.pb"), "wb") as f:
        f.write(to_tensor(outputs[0], graph.output[0].name).SerializeToString())
    if folded:
        with open(os.path.join(out_dir, "folded.txt"), "w") as f:
            f.write("\n".join(folded) + "\n")
    return True


def node_cases():
    import warnings

    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    for case in cases:
        if claimed(case.model) and case.data_sets:
            inputs, outputs = case.data_sets[0]
            yield "node", case.name, onnx.ModelProto.FromString(case.model.SerializeToString()), list(inputs), list(outputs)


def shipped_cases():
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for kind in ("pytorch-converted", "pytorch-operator"):
        root = os.path.join(data, kind)
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            case = os.path.join(root, name)
            model_path = os.path.join(case, "model.onnx")
            sets = os.path.join(case, "test_data_set_0")
            if not (os.path.isfile(model_path) and os.path.isdir(sets)):
                continue
            model = onnx.load(model_path)
            if not claimed(model):
                continue

            def read(prefix):
                out, j = [], 0
                while os.path.exists(os.path.join(sets, f"{prefix}_{j}.pb")):
                    t = onnx.TensorProto()
                    with open(os.path.join(sets, f"{prefix}_{j}.pb"), "rb") as f:
                        t.ParseFromString(f.read())
                    out.append(t)
                    j += 1
                return out

            yield kind, name, model, read("input"), read("output")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "conformance", "onnx"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    written, left_out = 0, []
    for kind, name, model, inputs, outputs in list(node_cases()) + list(shipped_cases()):
        result = write_case(os.path.join(out, kind, name), model, inputs, outputs)
        if result is True:
            written += 1
        elif result == "size":
            left_out.append(f"{kind}/{name}: input over {MAX_INPUT_BYTES} bytes")
        else:
            left_out.append(f"{kind}/{name}: inputs or outputs are not plain tensors")
    with open(os.path.join(out, "SOURCE.txt"), "w") as f:
        f.write(f"Generated by scripts/make_conformance.py from onnx {onnx.__version__} "
                f"(Apache-2.0): {written} cases.\n\nLeft out:\n")
        f.write("".join(f"- {line}\n" for line in left_out))
    print(f"{written} cases in {out} (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
