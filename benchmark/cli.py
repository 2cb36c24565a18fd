"""``edge-age benchmark``: every exported model and variant side by side, with the seeds' claims judged."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exports", default="exports", help="an export folder, or a folder of them (default exports/)")
    parser.add_argument("--data", help="image folder (default: each run's data folder)")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"], help="which split to score")
    parser.add_argument("--limit", type=int, help="score a seeded sample of N images of the split (default: all)")
    parser.add_argument("--threads", default="1,all", help="thread counts to time, e.g. 1,all or 1,2,4")
    parser.add_argument("--runs", type=int, default=100, help="timed batch-1 runs per variant (after 10 warm-up runs)")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--out", help="results folder (default reports/benchmark)")


def run(args: argparse.Namespace) -> int:
    from benchmark.harness import find_exports, parse_threads, run_benchmark

    if args.runs < 10:
        raise ValueError(f"--runs must be at least 10 for a median and p90 to mean something, got {args.runs}")
    if args.batch <= 0 or (args.limit is not None and args.limit <= 0):
        raise ValueError("--batch and --limit must be positive")
    rows = run_benchmark(find_exports(Path(args.exports)), Path(args.out or "reports/benchmark"), args.data, args.split,
                         args.limit, parse_threads(args.threads), args.runs, args.batch,
                         command="edge-age benchmark " + shlex.join(sys.argv[2:]))
    return 1 if any(r["status"] == "failed to run" for r in rows) else 0


