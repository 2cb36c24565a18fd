"""Model-only timing of one .tflite or .onnx file: the same code on the host and on a Linux board.

Self-contained on purpose (numpy plus the file's runtime, no edge-age import): ``edge-age benchmark --device
ssh://...`` copies this one file to a board and runs it with the board's Python, so host and board rows come
from the same measuring code. It reports load time (cold start), the first inference, warm-up and steady-state
statistics of batch-1 calls, and the process's peak resident memory, as one JSON line:

    python3 timing.py FILE --threads 1 --runs 100 --warmup 10 [--inputs normalised_nchw.npy]

Without ``--inputs`` the file gets a fixed pseudo-random input of its own shape and type (model-only timing).
``--against REFERENCE`` times FILE and REFERENCE in turns in one process instead and reports their ratio: on a
shared machine whose speed drifts from minute to minute, a ratio of two separate runs drifts with it. One process's
memory layout still moves a file's speed (by up to 25% on the AMD VM of 2026-12-06), so run it in a few fresh
processes and take the median ratio, as ``edge-age benchmark`` does (five).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM on Linux: ru_maxrss would include a forking parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tflite(path: str, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise SystemExit("ai-edge-litert is not installed here: pip install ai-edge-litert") from None
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    outputs = interpreter.get_output_details()

    def prepare(normalised_nchw: np.ndarray | None) -> np.ndarray:
        shape = tuple(detail["shape"])
        if normalised_nchw is None:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        else:
            x = normalised_nchw[:1].transpose(0, 2, 3, 1) if shape[-1] == 3 else normalised_nchw[:1]
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(detail["dtype"])
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])
        return np.ascontiguousarray(x, dtype=detail["dtype"])

    def run(x: np.ndarray) -> None:
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        for out in outputs:
            interpreter.get_tensor(out["index"])

    return prepare, run


def _onnx(path: str, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise SystemExit("onnxruntime is not installed here: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dtype = np.float16 if "float16" in first.type else np.float32

    def prepare(normalised_nchw: np.ndarray | None) -> np.ndarray:
        if normalised_nchw is None:
            shape = [1 if not isinstance(d, int) else d for d in first.shape]
            return np.random.default_rng(0).standard_normal(shape).astype(dtype)
        return np.ascontiguousarray(normalised_nchw[:1], dtype=dtype)

    def run(x: np.ndarray) -> None:
        session.run(None, {first.name: x})

    return prepare, run


RUNTIMES = {".tflite": _tflite, ".onnx": _onnx}


def _opener(path: str):
    """The runtime that opens ``path``, by its suffix; a clear exit for a file this timer cannot run."""
    suffix = Path(path).suffix
    if suffix not in RUNTIMES:
        raise SystemExit(f"{path}: this timer runs {', '.join(RUNTIMES)} files, not {suffix!r}")
    return RUNTIMES[suffix]
TURN_ROUNDS = 30  # --against: each file's timed calls come in this many turns


def time_file(path: str, threads: int, runs: int, warmup: int, inputs: np.ndarray | None = None,
              opener=None) -> dict:
    """Load (cold start), first inference, ``warmup`` more calls, then ``runs`` timed batch-1 calls, in ms.
    ``opener(path, threads) -> (prepare, run)`` times another kind of file the same way (the host's PyTorch
    reference); by default the file's suffix picks one of RUNTIMES."""
    if opener is None:
        opener = _opener(path)
    started = time.perf_counter()
    prepare, run = opener(path, threads)
    load_ms = (time.perf_counter() - started) * 1000
    x = prepare(inputs)
    started = time.perf_counter()
    run(x)
    first_ms = (time.perf_counter() - started) * 1000
    warm = []
    for _ in range(warmup):
        started = time.perf_counter()
        run(x)
        warm.append((time.perf_counter() - started) * 1000)
    ms = []
    for _ in range(runs):
        started = time.perf_counter()
        run(x)
        ms.append((time.perf_counter() - started) * 1000)
    ms = np.array(ms)
    return {"tool": "edge-age timing.py", "threads": threads, "runs": runs, "warmup_runs": warmup,
            "load_ms": load_ms, "first_inference_ms": first_ms,
            "warmup_ms_mean": float(np.mean(warm)) if warm else None,
            "latency_ms_median": float(np.median(ms)), "latency_ms_p10": float(np.percentile(ms, 10)),
            "latency_ms_p90": float(np.percentile(ms, 90)), "latency_ms_mean": float(ms.mean()),
            "latency_ms_min": float(ms.min()), "latency_ms_max": float(ms.max()), "latency_ms_std": float(ms.std()),
            "peak_rss_mb": peak_rss_mb(), "model_only": True}


def time_in_turns(path: str, reference: str, threads: int, runs: int, warmup: int,
                  rounds: int = TURN_ROUNDS) -> dict:
    """``path`` and ``reference`` loaded side by side and timed in turns, at least ``runs`` batch-1 calls each
    (10 per turn at least) spread over ``rounds`` rounds, so both see the same slow and fast minutes of the
    machine: the ratio of their medians is the latency ratio, and the spread of per-round ratios shows how steady
    it was. Each turn starts with one untimed call, which refills the caches the other model's turn evicted (an
    app runs one model)."""
    calls = max(10, -(-runs // rounds))
    runners = []
    for file in (path, reference):
        prepare, run = _opener(file)(file, threads)
        x = prepare(None)
        for _ in range(warmup + 1):
            run(x)
        runners.append((run, x))
    ms = [[], []]
    per_round = []
    for _ in range(rounds):
        medians = []
        for (run, x), times in zip(runners, ms):
            run(x)
            turn = []
            for _ in range(calls):
                started = time.perf_counter()
                run(x)
                turn.append((time.perf_counter() - started) * 1000)
            times += turn
            medians.append(float(np.median(turn)))
        per_round.append(medians[0] / medians[1])
    median_ms, reference_ms = float(np.median(ms[0])), float(np.median(ms[1]))
    return {"tool": "edge-age timing.py, in turns", "threads": threads, "rounds": rounds, "calls_per_turn": calls,
            "latency_ms_median": median_ms, "reference_latency_ms_median": reference_ms,
            "ratio": median_ms / reference_ms, "ratio_per_round_p10": float(np.percentile(per_round, 10)),
            "ratio_per_round_p90": float(np.percentile(per_round, 90))}


def summarise_turns(readings: list[dict]) -> dict:
    """Several in-turns readings of one pair, each from a fresh process, as one: the median of their ratios (one
    process's memory layout can move a file's latency by a quarter), with every ratio and reading beside it."""
    ratios = sorted(r["ratio"] for r in readings)
    return {**{k: readings[0][k] for k in ("tool", "threads", "rounds", "calls_per_turn") if k in readings[0]},
            "processes": len(readings), "ratio": float(np.median(ratios)), "ratio_per_process": ratios,
            "latency_ms_median": float(np.median([r["latency_ms_median"] for r in readings])),
            "reference_latency_ms_median": float(np.median([r["reference_latency_ms_median"] for r in readings])),
            "readings": readings}


def board_facts() -> dict:
    """What the board is: architecture, CPU, cores, the int8 features its CPU lists, runtime versions."""
    from importlib import metadata

    cpuinfo = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.split(":")[0].strip() in ("model name", "Hardware", "Model")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.split(":")[0].strip() in ("flags", "Features")), [])
    versions = {}
    for package in ("ai-edge-litert", "onnxruntime", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    import os

    return {"arch": platform.machine(), "cpu": model or "unknown CPU", "cores": os.cpu_count(),
            "isa": sorted(set(flags) & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}),
            "os": platform.platform(), "python": platform.python_version(), "versions": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="a .tflite or .onnx file (omit with --facts)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--inputs", help="normalised float32 NCHW .npy to feed (default: a fixed random input)")
    parser.add_argument("--against", metavar="REFERENCE",
                        help="time FILE and REFERENCE in turns in one process and report FILE's latency ratio to it")
    parser.add_argument("--facts", action="store_true", help="print what this machine is, and exit")
    args = parser.parse_args(argv)
    if args.facts:
        print(json.dumps(board_facts()), flush=True)
        return 0
    if not args.file:
        parser.error("give a model file, or --facts")
    if args.against:
        print(json.dumps(time_in_turns(args.file, args.against, args.threads, args.runs, args.warmup)), flush=True)
        return 0
    inputs = np.load(args.inputs) if args.inputs else None
    print(json.dumps(time_file(args.file, args.threads, args.runs, args.warmup, inputs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
