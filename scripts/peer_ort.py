#!/usr/bin/env python3
"""Peer baseline: ONNX Runtime's own static int8 quantisation of edgefit's models.

    python3 scripts/peer_ort.py [--calib-samples 500] [--methods minmax,entropy,percentile]
                                [--runs 200] [--imagenet] [--imagenet-runs 20]
                                [--imagenet-int8 resnet50,vgg16] [--edgefit [BIN]] [--json OUT.json]

What it measures, and on what (every figure is measured on the machine it runs on):

1. Accuracy, bundled models (`models/vgg-fmnist.onnx`, `models/resnet-fmnist.onnx`).
   Each is quantised with `onnxruntime.quantization.quantize_static`: QDQ format,
   per-channel weights, activations and weights both QInt8 by default (signed, asymmetric
   activations, symmetric weights; `--activation-type`, `--reduce-range` to change),
   calibrated by a CalibrationDataReader over the first N images of the bundled
   calibration subset (`models/data/calib-*`, 1,000 training-split images; N =
   `--calib-samples`, default 500, as edgefit's `compile`), once per calibrate method
   (MinMax, Entropy, Percentile). fp32 and every int8 model are then run on all 10,000
   images of the Fashion-MNIST test split (`models/data/t10k-*`, input pixel/255,
   batch 1: the models' batch dimension is fixed at 1) and the script reports top-1
   accuracy and agreement of each int8 model's top-1 class with fp32's. Each int8 model
   is also run with graph optimisation off ("QDQ reference": Q/DQ simulated, Conv/Gemm
   in fp32), which separates calibration error from ORT's int8 kernels.

2. Speed: ONNX Runtime fp32 and int8 (the MinMax QDQ model) at batch 1 on the CPU
   execution provider, intra_op_num_threads=1, inter_op_num_threads=1,
   ORT_ENABLE_ALL, ORT_SEQUENTIAL; warm-up runs, then median and p90 of `--runs` timed
   `run()` calls (wall clock, `time.perf_counter`) on one fixed input (the first test
   image for the bundled models). The timed session's optimised graph is saved and its
   op types counted, to show how many convolutions actually run as int8 kernels. With `--imagenet`, also torchvision's ResNet-50 and
   VGG16 from `models/full/` (random weights; exported with
   `scripts/export_torchvision.py` first if missing): `--imagenet-runs` runs (default 20)
   on one seeded uniform [0,1) input; their int8 models are calibrated on
   `--imagenet-calib` (default 16) seeded uniform [0,1) inputs: synthetic calibration,
   speed only. Before quantising, Identity nodes that merely alias an initializer are
   replaced by a copy of it (random init makes all biases zero, so torch's exporter
   aliases them and ORT would otherwise keep those biases, and the convolutions, in
   float; `--keep-identity` to skip). Models left out of `--imagenet-int8` are timed in fp32 only.

   With `--edgefit [BIN]`, each timed model is also timed by `BIN speed MODEL
   --precision int8,f16,f32 --kernels auto,no-avx512 --json` (tract f32, the edgefit
   engine's int8, f16 and f32 plans once with the fastest kernels this CPU has and once with AVX2
   only) right after ORT's runs of it, so the side-by-side table's ratios come from
   one run on one machine. BIN defaults to the `edgefit` that `cargo build` puts in
   $CARGO_TARGET_DIR (or ~/.cache/edgefit/target)/debug.

   A CPU with AVX2 but no AVX-512 / VNNI / AMX, for every engine at once (ORT's MLAS
   too): `bash scripts/avx2-only.sh python3 scripts/peer_ort.py ...` hides those features
   from the process and its children (CPUID faulting; see scripts/avx2-only.c); the
   machine label then says `avx512_hidden` (numpy, which reports what the process sees,
   does not report AMX: the wrapper clears its CPUID bits with AVX-512's).

3. Output: Markdown tables on stdout and, with `--json`, every figure, each labelled
   with its source ("measured"), the machine (`platform.processor()` and the
   `/proc/cpuinfo` model name), the onnxruntime version and the thread counts.
   Quantiser warnings (e.g. about reduce_range on x86 without VNNI) are collected too.

Quantised models are written to `--workdir` (default: a fresh folder under /tmp).
Needs only the standard library, numpy, onnx and onnxruntime (torch/torchvision only if
`--imagenet` has to run the export script).
"""

import argparse
import contextlib
import gzip
import json
import logging
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
BUNDLED = ["vgg-fmnist", "resnet-fmnist"]
IMAGENET = ["resnet50", "vgg16"]
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
METHOD_NAMES = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
QTYPES = {"QInt8": QuantType.QInt8, "QUInt8": QuantType.QUInt8}


# ----------------------------------------------------------------------------- data

def load_idx(path):
    """A gzip (or plain) IDX file: uint8 images (N,rows,cols) or uint8 labels (N,)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)
    if magic == 0x801:
        return np.frombuffer(raw, np.uint8, n, 8)
    raise ValueError(f"{path}: not an IDX image/label file (magic {magic:#x})")


def to_input(images):
    """uint8 (N,28,28) -> float32 (N,1,28,28) holding pixel/255."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


class Reader(CalibrationDataReader):
    """Feeds one batch-1 sample per get_next() call."""

    def __init__(self, input_name, samples):
        self.input_name = input_name
        self.samples = samples
        self.i = 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        s = self.samples[self.i:self.i + 1]
        self.i += 1
        return {self.input_name: s}

    def rewind(self):
        self.i = 0


# ----------------------------------------------------------------------------- machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags():
    """What the CPU has (/proc/cpuinfo) and what this process is shown (CPUID, as numpy
    reads it): they differ under scripts/avx2-only.sh, which hides AVX-512, VNNI and AMX."""
    flags = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = {k: k in have for k in ("avx2", "fma", "avx512f", "avx512_vnni",
                                                    "avx_vnni", "amx_int8")}
                    break
    except OSError:
        pass
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as seen
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as seen
        except ImportError:
            seen = None
    if seen is not None:
        flags["seen_by_process"] = {k: bool(seen.get(k)) for k in
                                    ("AVX2", "FMA3", "AVX512F", "AVX512_VNNI", "AVX512_ICL")}
        flags["avx512_hidden"] = bool(flags.get("avx512f")) and not seen.get("AVX512F")
    return flags


def machine_info():
    return {
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
    }


# ----------------------------------------------------------------------------- ORT

def session(path, optimized_path=None, level="ORT_ENABLE_ALL"):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def io_names(path):
    m = onnx.load(path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    ins = [i for i in m.graph.input if i.name not in inits]
    shape = [d.dim_value if d.HasField("dim_value") else 1 for d in ins[0].type.tensor_type.shape.dim]
    return ins[0].name, m.graph.output[0].name, shape


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.levelname}: {record.getMessage()}")


def inline_identity_initializers(src, dst):
    """Copy of src where every Identity of an initializer becomes an initializer.

    torch's exporter aliases identical weights through Identity nodes; with random
    initialisation every bias is zero (and so are the folded BatchNorm biases), so most
    biases of the full torchvision exports arrive as Identity outputs. quantize_static
    then finds no constant bias, leaves it in float and ORT cannot fuse those convolutions
    into QLinearConv. Same values, same graph otherwise. Returns the number inlined (0:
    dst not written).
    """
    m = onnx.load(src)
    inits = {i.name: i for i in m.graph.initializer}
    keep, added = [], 0
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            m.graph.initializer.append(t)
            inits[t.name] = t
            added += 1
        else:
            keep.append(n)
    if added:
        del m.graph.node[:]
        m.graph.node.extend(keep)
        onnx.save(m, dst)
    return added


def quantize(src, dst, input_name, samples, method, args, log):
    """quantize_static into dst; returns (seconds, warnings)."""
    if not args.keep_identity:
        clean = dst[:-5] + "-fp32-inlined.onnx"
        n = inline_identity_initializers(src, clean)
        if n:
            log(f"    {n} Identity-of-initializer nodes inlined before quantising ({clean})")
            src = clean
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    # The calibrators print progress to stdout; keep stdout for the tables.
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        quantize_static(src, dst, Reader(input_name, samples),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=args.reduce_range,
                        activation_type=QTYPES[args.activation_type],
                        weight_type=QTYPES[args.weight_type],
                        calibrate_method=METHODS[method])
        secs = time.perf_counter() - t0
    root.removeHandler(handler)
    msgs = handler.records + [f"{w.category.__name__}: {w.message}" for w in caught]
    out = []
    for m in msgs:  # de-duplicate, keep order
        if m not in out:
            out.append(m)
    for m in out:
        log(f"    quantiser says: {m}")
    return secs, out


def evaluate(path, input_name, x, level="ORT_ENABLE_ALL"):
    """Top-1 predictions at batch 1 over all of x."""
    sess = session(path, level=level)
    preds = np.empty(len(x), np.int64)
    t0 = time.perf_counter()
    for i in range(len(x)):
        out = sess.run(None, {input_name: x[i:i + 1]})[0]
        preds[i] = int(np.argmax(out[0]))
    secs = time.perf_counter() - t0
    return preds, secs


def time_model(path, input_name, x, runs, warmup, optimized_path=None):
    t0 = time.perf_counter()
    sess = session(path, optimized_path)
    load_s = time.perf_counter() - t0
    feed = {input_name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    a = np.array(times)
    return {"runs": runs, "warmup": warmup, "median_ms": float(np.median(a)),
            "p90_ms": float(np.percentile(a, 90)), "mean_ms": float(a.mean()),
            "min_ms": float(a.min()), "session_load_s": load_s}


def op_counts(path):
    if not path or not os.path.exists(path):
        return None
    m = onnx.load(path, load_external_data=False)
    counts = {}
    for n in m.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    ap.add_argument("--data", default=None, help="IDX folder (default MODELS_DIR/data)")
    ap.add_argument("--models", default=",".join(BUNDLED), help="bundled models ('' for none)")
    ap.add_argument("--calib-samples", type=int, default=500)
    ap.add_argument("--methods", default="minmax,entropy,percentile",
                    help="calibrate methods for the accuracy table (minmax always runs)")
    ap.add_argument("--activation-type", choices=list(QTYPES), default="QInt8")
    ap.add_argument("--weight-type", choices=list(QTYPES), default="QInt8")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights (ORT's advice without VNNI)")
    ap.add_argument("--keep-identity", action="store_true",
                    help="quantise the model as is, without inlining Identity-of-initializer nodes")
    ap.add_argument("--test-limit", type=int, default=0, help="evaluate only the first N test images (0: all)")
    ap.add_argument("--runs", type=int, default=200, help="timed runs, bundled models")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up runs, bundled models")
    ap.add_argument("--imagenet", action="store_true", help="also time ResNet-50 and VGG16 from models/full")
    ap.add_argument("--imagenet-models", default=",".join(IMAGENET))
    ap.add_argument("--imagenet-int8", default=",".join(IMAGENET),
                    help="ImageNet models to quantise and time in int8 too (others: fp32 only)")
    ap.add_argument("--imagenet-runs", type=int, default=20)
    ap.add_argument("--imagenet-warmup", type=int, default=3)
    ap.add_argument("--imagenet-calib", type=int, default=16, help="synthetic calibration inputs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where quantised models go (default: new /tmp folder)")
    ap.add_argument("--json", default=None, metavar="OUT.json")
    ap.add_argument("--edgefit", nargs="?", const="", default=None, metavar="BIN",
                    help="also time each model with `edgefit speed` (default binary: the cargo build's)")
    args = ap.parse_args()
    if args.edgefit == "":
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/edgefit/target")
        args.edgefit = os.path.join(target, "debug", "edgefit")
    if args.edgefit is not None and not os.access(args.edgefit, os.X_OK):
        ap.error(f"--edgefit: {args.edgefit} is not an executable (build it: cargo build -p edgefit)")

    data_dir = args.data or os.path.join(args.models_dir, "data")
    workdir = args.workdir or tempfile.mkdtemp(prefix="peer_ort_")
    os.makedirs(workdir, exist_ok=True)
    methods = ["minmax"] + [m for m in args.methods.split(",") if m and m != "minmax"]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {','.join(METHODS)}")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    machine = machine_info()
    cpu = machine["cpu_model"] or machine["processor"]
    if machine["cpu_flags"].get("avx512_hidden"):
        cpu += " (AVX-512 and VNNI hidden: scripts/avx2-only.sh)"
    label = {"source": "measured", "machine": cpu,
             "processor": machine["processor"], "onnxruntime": ort.__version__,
             "intra_op_num_threads": 1, "inter_op_num_threads": 1}
    qconf = {"quant_format": "QDQ", "per_channel": True, "activation_type": args.activation_type,
             "weight_type": args.weight_type, "reduce_range": args.reduce_range, "extra_options": {},
             "identity_initializers_inlined_first": not args.keep_identity}
    report = {"schema": "edgefit-peer-ort/1", "source": "measured", "machine": machine,
              "label": label, "quantization": qconf,
              "session": {"provider": "CPUExecutionProvider", "intra_op_num_threads": 1,
                          "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL",
                          "execution_mode": "ORT_SEQUENTIAL", "batch": 1},
              "loadavg_start": list(os.getloadavg()), "workdir": workdir,
              "accuracy": [], "speed": [], "edgefit_speed": [], "quantizer_warnings": {}, "notes": []}
    log(f"machine: {label['machine']} ({machine['processor']}), onnxruntime {ort.__version__}, "
        f"flags {machine['cpu_flags']}; quantised models in {workdir}")

    bundled = [m for m in args.models.split(",") if m]
    if bundled:
        calib_x = to_input(load_idx(os.path.join(data_dir, "calib-images-idx3-ubyte.gz")))
        if args.calib_samples > len(calib_x):
            ap.error(f"--calib-samples {args.calib_samples} > {len(calib_x)} calibration images")
        calib_x = np.ascontiguousarray(calib_x[:args.calib_samples])
        test_x = to_input(load_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")))
        test_y = load_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
        if args.test_limit:
            test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]
        test_x = np.ascontiguousarray(test_x)

    for name in bundled:
        src = os.path.join(args.models_dir, f"{name}.onnx")
        input_name, _, _ = io_names(src)
        log(f"{name}: fp32 on {len(test_x)} test images")
        fp32_pred, secs = evaluate(src, input_name, test_x)
        fp32_correct = int((fp32_pred == test_y).sum())
        report["accuracy"].append({**label, "model": name, "precision": "fp32", "calibrate_method": None,
                                   "test_images": len(test_x), "correct": fp32_correct,
                                   "top1": fp32_correct / len(test_x), "agreement_with_fp32": 1.0,
                                   "model_bytes": os.path.getsize(src), "eval_s": secs})
        int8_paths = {}
        for method in methods:
            dst = os.path.join(workdir, f"{name}-int8-{method}.onnx")
            log(f"{name}: quantize_static {METHOD_NAMES[method]} on {len(calib_x)} calibration images")
            qsecs, qwarn = quantize(src, dst, input_name, calib_x, method, args, log)
            report["quantizer_warnings"][f"{name}/{method}"] = qwarn
            int8_paths[method] = dst
            pred, secs = evaluate(dst, input_name, test_x)
            correct = int((pred == test_y).sum())
            # The same QDQ graph with no graph optimisation: every QuantizeLinear /
            # DequantizeLinear runs as written and Conv/Gemm run in fp32 ("fake quant"),
            # so this separates calibration error from ORT's int8 kernels.
            ref_pred, _ = evaluate(dst, input_name, test_x, level="ORT_DISABLE_ALL")
            ref_correct = int((ref_pred == test_y).sum())
            row = {**label, "model": name, "precision": "int8", **qconf,
                   "calibrate_method": METHOD_NAMES[method], "calib_samples": len(calib_x),
                   "calib_data": "bundled calibration subset (training split), first N images",
                   "test_images": len(test_x), "correct": correct, "top1": correct / len(test_x),
                   "agreement_with_fp32": float((pred == fp32_pred).mean()),
                   "qdq_reference_top1": ref_correct / len(test_x),
                   "qdq_reference_agreement_with_fp32": float((ref_pred == fp32_pred).mean()),
                   "qdq_reference_note": "same model, ORT_DISABLE_ALL: Q/DQ simulated, Conv/Gemm in fp32",
                   "model_bytes": os.path.getsize(dst), "quantize_s": qsecs, "eval_s": secs}
            report["accuracy"].append(row)
            log(f"    top-1 {row['top1']:.4f} (fp32 {fp32_correct / len(test_x):.4f}), "
                f"agreement {row['agreement_with_fp32']:.4f}; QDQ reference (no fusion) "
                f"{row['qdq_reference_top1']:.4f}")
        x = test_x[:1]
        for prec, path in (("fp32", src), ("int8", int8_paths["minmax"])):
            log(f"{name}: timing {prec}, {args.runs} runs")
            opt = os.path.join(workdir, f"{name}-{prec}-ort-optimized.onnx")
            t = time_model(path, input_name, x, args.runs, args.warmup, opt)
            report["speed"].append({**label, "model": name, "precision": prec,
                                    "calibrate_method": "MinMax" if prec == "int8" else None,
                                    "calibration": "bundled calibration subset" if prec == "int8" else None,
                                    "input": "first test image", **t,
                                    "optimized_graph_ops": op_counts(opt)})
            log(f"    median {t['median_ms']:.4f} ms, p90 {t['p90_ms']:.4f} ms")
        if args.edgefit:
            report["edgefit_speed"] += edgefit_speed(args.edgefit, name, src, args.runs, log)

    if args.imagenet:
        full = os.path.join(args.models_dir, "full")
        names = [m for m in args.imagenet_models.split(",") if m]
        missing = [m for m in names if not os.path.exists(os.path.join(full, f"{m}.onnx"))]
        if missing:
            cmd = [sys.executable, os.path.join(HERE, "export_torchvision.py"), "--graph-only", "",
                   "--mlperf", "", "--full", full, "--models", ",".join(missing)]
            log(f"exporting {missing}: {' '.join(cmd)}")
            subprocess.run(cmd, check=True)
        int8_set = {m for m in args.imagenet_int8.split(",") if m}
        rng = np.random.default_rng(args.seed)
        for name in names:
            src = os.path.join(full, f"{name}.onnx")
            input_name, _, shape = io_names(src)
            x = rng.random(shape, dtype=np.float32)
            calib = rng.random([args.imagenet_calib] + shape[1:], dtype=np.float32)
            todo = [("fp32", src)]
            if name in int8_set:
                dst = os.path.join(workdir, f"{name}-int8-minmax.onnx")
                log(f"{name}: quantize_static MinMax on {len(calib)} synthetic inputs")
                qsecs, qwarn = quantize(src, dst, input_name, calib, "minmax", args, log)
                report["quantizer_warnings"][f"{name}/minmax"] = qwarn
                todo.append(("int8", dst))
            else:
                qsecs = None
                report["notes"].append(f"{name}: int8 not quantised (left out of --imagenet-int8); fp32 only")
            for prec, path in todo:
                log(f"{name}: timing {prec}, {args.imagenet_runs} runs")
                opt = os.path.join(workdir, f"{name}-{prec}-ort-optimized.onnx")
                t = time_model(path, input_name, x, args.imagenet_runs, args.imagenet_warmup, opt)
                row = {**label, "model": name, "precision": prec, "input": "seeded uniform [0,1) random",
                       "model_bytes": os.path.getsize(path), **t, "optimized_graph_ops": op_counts(opt)}
                if prec == "int8":
                    row.update({**qconf, "calibrate_method": "MinMax", "quantize_s": qsecs,
                                "calibration": f"synthetic calibration ({len(calib)} seeded uniform "
                                               f"[0,1) inputs), speed only"})
                report["speed"].append(row)
                log(f"    median {t['median_ms']:.3f} ms, p90 {t['p90_ms']:.3f} ms")
                if os.path.exists(opt):
                    os.remove(opt)  # large; the op counts are kept
            if args.edgefit:
                report["edgefit_speed"] += edgefit_speed(args.edgefit, name, src, args.imagenet_runs, log)

    report["loadavg_end"] = list(os.getloadavg())
    print_tables(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        log(f"wrote {args.json}")


def edgefit_speed(binary, name, path, runs, log):
    """`edgefit speed` on one model: tract f32 and int8 plans with each kernel set."""
    cmd = [binary, "speed", path, "--precision", "int8,f16,f32", "--kernels", "auto,no-avx512",
           "--runs", str(runs), "--json"]
    log(f"{name}: edgefit speed ({' '.join(cmd[1:])})")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for row in json.loads(out)["rows"]:
        rows.append({"model": name, "engine": row["engine"], "precision": row["precision"],
                     "kernels": row["kernels"], "runs": row["runs"], "median_ms": row["median_ms"],
                     "p90_ms": row["p90_ms"], "source": "measured (edgefit speed)"})
        log(f"    {row['engine']} {row['precision']} {row['kernels']}: median {row['median_ms']:.3f} ms")
    return rows


def print_side_by_side(r):
    """One row per model: ORT fp32 / int8, tract f32, edgefit int8 per kernel set."""
    models = []
    for s in r["speed"] + r["edgefit_speed"]:
        if s["model"] not in models:
            models.append(s["model"])
    kernels = []
    for e in r["edgefit_speed"]:
        if e["engine"] != "tract" and e["precision"] == "int8" and e["kernels"] not in kernels:
            kernels.append(e["kernels"])
    floats = []
    for e in r["edgefit_speed"]:
        if e["engine"] != "tract" and e["precision"] != "int8" and e["kernels"] not in floats:
            floats.append(e["kernels"])
    head = ["model", "ORT fp32", "ORT int8", "tract f32"] + [f"edgefit int8 ({k})" for k in kernels] \
        + [f"edgefit {p} ({k})" for k in floats for p in ("f16", "f32")] \
        + [f"ORT fp32 / edgefit int8 ({k})" for k in kernels] \
        + [f"edgefit f32 ({k}) / ORT fp32" for k in floats]
    print("| " + " | ".join(head) + " |")
    print("| --- |" + " ---: |" * (len(head) - 1))
    for m in models:
        ort_ms = {s["precision"]: s["median_ms"] for s in r["speed"] if s["model"] == m}
        tract = next((e["median_ms"] for e in r["edgefit_speed"] if e["model"] == m and e["engine"] == "tract"), None)
        ours = {e["kernels"]: e["median_ms"] for e in r["edgefit_speed"]
                if e["model"] == m and e["engine"] != "tract" and e["precision"] == "int8"}
        fl = {(e["precision"], e["kernels"]): e["median_ms"] for e in r["edgefit_speed"]
              if e["model"] == m and e["engine"] != "tract" and e["precision"] != "int8"}
        ms = lambda v: f"{v:.3f} ms" if v is not None else "-"
        cells = [m, ms(ort_ms.get("fp32")), ms(ort_ms.get("int8")), ms(tract)]
        cells += [ms(ours.get(k)) for k in kernels]
        cells += [ms(fl.get((p, k))) for k in floats for p in ("f16", "f32")]
        cells += [f"{ort_ms['fp32'] / ours[k]:.2f}x" if "fp32" in ort_ms and k in ours else "-" for k in kernels]
        cells += [f"{fl[('f32', k)] / ort_ms['fp32']:.2f}x" if "fp32" in ort_ms and ("f32", k) in fl else "-"
                  for k in floats]
        print("| " + " | ".join(cells) + " |")
    print("\n(median wall clock, batch 1, one thread; each model's ORT and edgefit timings ran back to "
          "back in this run. The last columns: how many times faster edgefit's int8 is than ORT fp32, "
          "and edgefit f32's time as a multiple of ORT fp32's.)\n")


def print_tables(r):
    lab = r["label"]
    q = r["quantization"]
    print(f"Measured on {lab['machine']} ({lab['processor'] or r['machine']['machine']}), "
          f"onnxruntime {lab['onnxruntime']}, CPU EP, intra/inter-op threads 1/1, ORT_ENABLE_ALL, "
          f"sequential. int8 = quantize_static QDQ, per-channel, activations {q['activation_type']}, "
          f"weights {q['weight_type']}, reduce_range={q['reduce_range']}.\n")
    if r["accuracy"]:
        print("| model | precision | calibration | top-1 | vs fp32 | agreement with fp32 "
              "| top-1, QDQ reference (no fusion) |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
        fp32 = {a["model"]: a["top1"] for a in r["accuracy"] if a["precision"] == "fp32"}
        for a in r["accuracy"]:
            cal = f"{a['calibrate_method']}, {a['calib_samples']} imgs" if a["calibrate_method"] else "-"
            d = (a["top1"] - fp32[a["model"]]) * 100
            ref = f"{a['qdq_reference_top1'] * 100:.2f}%" if "qdq_reference_top1" in a else "-"
            print(f"| {a['model']} | {a['precision']} | {cal} | {a['top1'] * 100:.2f}% | "
                  f"{d:+.2f} pt | {a['agreement_with_fp32'] * 100:.2f}% | {ref} |")
        print(f"\n({r['accuracy'][0]['test_images']} test images, batch 1. QDQ reference: the same int8 "
              "model with graph optimisation off, so Q/DQ are simulated and Conv/Gemm run in fp32.)\n")
    if r["speed"]:
        print("| model | precision | calibration | runs | median ms | p90 ms | fp32/int8 | int8 convs |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
        fp32 = {s["model"]: s["median_ms"] for s in r["speed"] if s["precision"] == "fp32"}
        for s in r["speed"]:
            cal = s.get("calibration") or "-"
            sp = f"{fp32[s['model']] / s['median_ms']:.2f}x" if s["precision"] == "int8" else "-"
            ops = s.get("optimized_graph_ops") or {}
            q = sum(v for k, v in ops.items() if k.endswith("QLinearConv") or k.endswith("ConvInteger"))
            f = sum(v for k, v in ops.items() if k.split(".")[-1] in ("Conv", "FusedConv"))
            ic = f"{q}/{q + f}" if ops and s["precision"] == "int8" else "-"
            print(f"| {s['model']} | {s['precision']} | {cal} | {s['runs']} | {s['median_ms']:.3f} | "
                  f"{s['p90_ms']:.3f} | {sp} | {ic} |")
        print("\n(batch 1, wall clock per run() call after warm-up.)")
    if r["edgefit_speed"]:
        print_side_by_side(r)
    for n in r["notes"]:
        print(f"\nNote: {n}")
    warned = sorted({w for ws in r["quantizer_warnings"].values() for w in ws})
    if warned:
        print("\nQuantiser warnings:")
        for w in warned:
            print(f"- {w}")


if __name__ == "__main__":
    main()
