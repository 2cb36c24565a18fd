"""``edge-age benchmark``: every exported model and variant side by side, with the seeds' claims judged."""
from __future__ import annotations

import argparse
import platform
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exports", default="exports", help="an export folder, or a folder of them (default exports/)")
    parser.add_argument("--data", help="image folder (default: each run's data folder)")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"], help="which split to score")
    parser.add_argument("--limit", type=int, help="score only the first N images of the split (default: all)")
    parser.add_argument("--threads", default="1,all", help="thread counts to time, e.g. 1,all or 1,2,4")
    parser.add_argument("--runs", type=int, default=100, help="timed batch-1 runs per variant (after 10 warm-up runs)")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--out", help="results folder (default reports/benchmark)")


def run(args: argparse.Namespace) -> int:
    from benchmark.claims import judge_claims
    from benchmark.harness import benchmark_model, find_exports, measure_peaks, parse_threads
    from benchmark.report import write_results
    from benchmark.training_speed import describe_machine

    if args.runs < 10:
        raise ValueError(f"--runs must be at least 10 for a median and p90 to mean something, got {args.runs}")
    if args.batch <= 0 or (args.limit is not None and args.limit <= 0):
        raise ValueError("--batch and --limit must be positive")
    thread_counts = parse_threads(args.threads)
    exported = find_exports(Path(args.exports))
    out_dir = Path(args.out or "reports/benchmark")
    print(f"benchmarking {len(exported)} model(s): {', '.join(e.label for e in exported)}; threads {thread_counts}",
          flush=True)
    print("measuring this CPU's compute ceiling ...", flush=True)
    peaks = measure_peaks(thread_counts)
    rows = []
    for number, model in enumerate(exported, 1):
        print(f"[{number}/{len(exported)}] {model.label} ({model.family}, {model.manifest['input']['size']} px)", flush=True)
        rows += benchmark_model(model, args.data, args.split, args.limit, thread_counts, args.runs, args.batch, peaks)
    claims = judge_claims(rows, str(thread_counts[0]))
    context = {"machine": describe_machine(), "versions": _versions(), "thread_counts": thread_counts,
               "runs": args.runs, "batch": args.batch, "split": args.split, "limit": args.limit,
               "command": "edge-age " + shlex.join(sys.argv[1:]) if sys.argv[0].endswith("edge-age") else
               "edge-age benchmark " + shlex.join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                                                  if v is not None and k not in ("handler", "command")),
               "peaks": {str(t): p for t, p in peaks.items()}}
    write_results(out_dir, rows, claims, context)
    for claim in claims:
        print(f"claim {claim['claim']}: {claim['verdict']} - {claim['evidence']}")
    print(f"wrote {out_dir / 'report.md'}, results.csv, results.json and plots")
    failed = [r for r in rows if r["status"] in ("failed to run",)]
    return 1 if failed else 0


def _versions() -> dict:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("torch", "onnxruntime", "ai-edge-litert", "litert-torch", "coremltools", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
