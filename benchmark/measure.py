"""One measurement of one model file in a process of its own (so one runtime's threads never disturb another's).

    python -m edge_age.benchmark.measure latency FILE --inputs small.npy --threads N --runs R --batch 32
    python -m edge_age.benchmark.measure turns FILE --against REFERENCE --threads N --runs R
    python -m edge_age.benchmark.measure predict FILE --pixels test_uint8.npy --out predictions.npz
    python -m edge_age.benchmark.measure peak - --threads N
    python -m edge_age.benchmark.measure profile FILE --threads N --runs R

``latency`` times loading and the first call (cold start), batch-1 calls (median, p90 over R runs after a warm-up;
through timing.py for exported files, the same code a board runs) and batch-``--batch`` throughput on
already normalised float32 NCHW inputs: preprocessing stays outside the timed region. ``predict`` runs every
test image (uint8 NHWC, normalised here as the file's own metadata says) and saves age and P(female). Both print one
JSON line, with the process's peak resident memory. ``peak`` measures this CPU's compute ceiling for the
benchmark's floor line: fp32 matrix products through torch and int8 ones through onnxruntime (MatMulInteger).
``turns`` times FILE and REFERENCE in turns in one process (timing.py) for a latency ratio that holds when the
machine's speed drifts. ``profile`` asks the file's format for its runtime's own per-op profile, summed by kind of
work (where one exists).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge_age import formats
from edge_age.benchmark.timing import RUNTIMES, peak_rss_mb, time_file, time_in_turns
from edge_age.runtimes import open_model_file, open_runner

WARMUP_RUNS = 10
THROUGHPUT_RUNS = 10


def _timed(fn, runs: int) -> np.ndarray:
    """Seconds of each of ``runs`` calls."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return np.array(times)


def _pytorch(path: str, threads: int):
    """A checkpoint for timing.py's timer: (prepare, run) on already normalised NCHW inputs."""
    runner = open_runner(path, threads=threads)
    return (lambda normalised_nchw: np.ascontiguousarray(normalised_nchw[:1])), runner


def latency(path: str, inputs: np.ndarray, threads: int, runs: int, batch: int) -> dict:
    """Batch-1 latency with cold start (timing.py: the same code a board runs), then batch throughput."""
    opener = None if Path(path).suffix in RUNTIMES else _pytorch  # a checkpoint: the PyTorch reference row
    result = time_file(path, threads, runs, WARMUP_RUNS, inputs, opener=opener)
    runner = open_runner(path, threads=threads)
    many = np.ascontiguousarray(np.resize(inputs, (batch, *inputs.shape[1:])))
    runner(many)
    batch_seconds = _timed(lambda: runner(many), THROUGHPUT_RUNS)
    return {**result, "batch": batch, "throughput_images_per_s": float(batch / np.median(batch_seconds)),
            "peak_rss_mb": peak_rss_mb()}


def predict(path: str, pixels: np.ndarray) -> dict:
    age, gender_prob = open_model_file(path).predict(pixels)
    return {"age": age, "gender_prob": gender_prob, "peak_rss_mb": peak_rss_mb()}


def peak(threads: int, side: int = 1024, repeats: int = 10) -> dict:
    """Best-of-``repeats`` GFLOP/s of a side^3 matrix product: fp32 (torch) and int8 (onnxruntime)."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    a, b = torch.randn(side, side), torch.randn(side, side)
    flops = 2 * side ** 3

    def best_rate(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        return flops / best / 1e9

    fp32 = best_rate(lambda: torch.mm(a, b))
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "int8_peak",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [side, side]),
                               helper.make_tensor_value_info("b", TensorProto.INT8, [side, side])],
                              [helper.make_tensor_value_info("c", TensorProto.INT32, [side, side])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a8 = np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)
    b8 = np.random.default_rng(1).integers(-128, 127, (side, side), dtype=np.int8)
    int8 = best_rate(lambda: session.run(None, {"a": a8, "b": b8}))
    onnx.checker.check_model(model)
    return {"threads": threads, "fp32_gflops": fp32, "int8_gops": int8, "matrix_side": side}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_age.benchmark.measure")
    parser.add_argument("mode", choices=["latency", "turns", "predict", "peak", "profile"])
    parser.add_argument("file")
    parser.add_argument("--inputs", help="latency: normalised float32 NCHW .npy")
    parser.add_argument("--against", help="turns: the reference file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pixels", help="predict: uint8 NHWC .npy")
    parser.add_argument("--out", help="predict: where to save age and gender_prob (.npz)")
    args = parser.parse_args(argv)
    if args.mode == "peak":
        result = peak(args.threads)
    elif args.mode == "profile":
        result = {"time_by_op_kind_us": formats.by_suffix(Path(args.file).suffix).time_by_op_kind(
            args.file, args.threads, args.runs)}
    elif args.mode == "turns":
        result = time_in_turns(args.file, args.against, args.threads, args.runs, WARMUP_RUNS)
    elif args.mode == "latency":
        result = latency(args.file, np.load(args.inputs), args.threads, args.runs, args.batch)
    else:
        out = predict(args.file, np.load(args.pixels, mmap_mode="r"))
        np.savez(args.out, age=out["age"], gender_prob=out["gender_prob"])
        result = {"n": len(out["age"]), "peak_rss_mb": out["peak_rss_mb"]}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
