#!/usr/bin/env python3
"""Run the official MLPerf Tiny runner (mlcommons/tiny, benchmark/runner) against
a DUT on a serial port given by path -- a pseudo-terminal to the QEMU board, or
a USB-UART whose VID/PID the runner's devices.yaml does not list.

The runner finds devices by USB VID/PID only (device_manager.py), which a
pseudo-terminal has not; everything else here is the runner's own code: its
DUT class (serial_device.py: `cmd%`, lines until `m-ready`), its test scripts
(tests_accuracy.yaml / tests_performance.yaml), its DataSet, Script and
summarize_result. Results go to RUNNER/sessions/<time>/ as the runner writes
them (log.txt, results.txt, results.json).

    pip install pyserial pyyaml numpy scikit-learn matplotlib pyusb
    python3 scripts/mlperf_runner.py --runner tiny/benchmark/runner \
        --port /tmp/edgefit-dut --dataset-path datasets --mode a
"""
import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runner", required=True, help="mlcommons/tiny's benchmark/runner folder")
    ap.add_argument("--port", required=True, help="the DUT's serial device (e.g. a socat pty)")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--dataset-path", required=True, help="written by `edgefit mlperf-dataset`")
    ap.add_argument("--mode", choices=["a", "p"], default="a",
                    help="accuracy or performance (energy needs the interface board: main.py)")
    ap.add_argument("--test-script", help="a tests YAML (default: the runner's for the mode)")
    args = ap.parse_args()

    runner = os.path.abspath(args.runner)
    dataset_path = os.path.abspath(args.dataset_path)
    sys.path.insert(0, runner)
    os.chdir(runner)  # the runner logs to ./sessions/<time>/
    import main as tiny  # noqa: E402  (the runner's main.py: parsing and summaries)
    from device_under_test import DUT  # noqa: E402

    script_file = args.test_script or {
        "a": "tests_accuracy.yaml",
        "p": "tests_performance.yaml",
    }[args.mode]
    tests = tiny.parse_test_script(script_file)
    dut = DUT(args.port, args.baud)
    tiny.init_dut(dut)  # name, model, profile, as run_test does
    model = dut.get_model()
    if model not in tests:
        sys.exit(f"the DUT announces model {model!r}, which {script_file} has no test for")
    script = tiny.Script(tests[model])
    dataset = tiny.DataSet(os.path.join(dataset_path, script.model), script.truth)
    result = script.run(None, dut, dataset, args.mode)
    if not isinstance(result, list):
        result = [result]
    for r in result:
        r["mode"] = args.mode
    results_file = os.path.join(os.path.dirname(tiny.log_filename), "results.txt")
    tiny.summarize_result(result, None, mode=args.mode, results_file=results_file)
    print(f"Session logged in file {tiny.log_filename}")


if __name__ == "__main__":
    main()
