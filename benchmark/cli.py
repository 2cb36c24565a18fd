"""``edge-age benchmark``: every exported model and variant side by side, with the seeds' claims judged."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edge_age.cli_args import output_folder, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exports", default="exports", help="an export folder, or a folder of them (default exports/)")
    parser.add_argument("--data", help="image folder (default: each run's data folder)")
    parser.add_argument("--labels", metavar="CSV", help="file,age,gender CSV for a --data folder that is not "
                        "UTKFace-named (implies --whole-set)")
    parser.add_argument("--whole-set", action="store_true", help="score every image of --data/--labels instead of "
                        "the run's split (the default when the export's run and its split.json are not here)")
    parser.add_argument("--align", action="store_true", help="raw photos: find and align each image's largest face "
                        "with dlib first (as evaluate --align); photos without a face are counted, not scored")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"], help="which split to score")
    parser.add_argument("--limit", type=positive_int, help="score a seeded sample of N images (default: all)")
    parser.add_argument("--threads", default="1,all", help="thread counts to time, e.g. 1,all or 1,2,4")
    parser.add_argument("--runs", type=positive_int, default=100,
                        help="timed batch-1 runs per variant (after 10 warm-up runs; at least 10)")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--out", type=output_folder, help="results folder (default reports/benchmark)")
    parser.add_argument("--app-assets", metavar="DIR", help="an Android app's assets folder (default the demo's): "
                        "its int8 file is judged against the phone-model targets")
    devices = parser.add_argument_group("on-device timing (model-only; accuracy comes from the host: same bytes)")
    devices.add_argument("--device", action="append", default=[], metavar="SPEC",
                         help="adb, adb:SERIAL (an Android phone) or ssh://[user@]host[:port] (a Linux board); repeat "
                              "for several")
    devices.add_argument("--benchmark-binary", metavar="PATH", help="adb: LiteRT's benchmark_model for the phone's ABI")
    devices.add_argument("--cores", metavar="MASK", help="adb: taskset mask to pin to (e.g. f0 for 4 big cores)")
    devices.add_argument("--use-gpu", action="store_true", help="adb: benchmark_model --use_gpu=true")
    devices.add_argument("--use-nnapi", action="store_true", help="adb: benchmark_model --use_nnapi=true")
    devices.add_argument("--app-stages", action="store_true",
                         help="adb: also time whole frames (crop, tensor, inference, decode) in the demo app's benchmark "
                              "mode, for the files the installed app ships")
    devices.add_argument("--ssh-config", metavar="FILE", help="ssh: an ssh_config file (keys, ports, known_hosts)")
    devices.add_argument("--remote-python", default="python3", help="ssh: the board's Python (default python3)")


def run(args: argparse.Namespace) -> int:
    from edge_age.benchmark.devices import open_device
    from edge_age.benchmark.harness import Scoring, find_exports, parse_threads, run_benchmark

    if args.runs < 10:
        raise ValueError(f"--runs must be at least 10 for a median and p90 to mean something, got {args.runs}")
    threads = parse_threads(args.threads)
    scoring = Scoring(data=args.data, labels=args.labels, split=args.split, whole_set=args.whole_set or bool(args.labels),
                      limit=args.limit, align=args.align)
    if scoring.labels and not args.data:
        raise ValueError("--labels needs --data DIR, the folder its file names are relative to")
    if args.app_assets and not (Path(args.app_assets) / "manifest.json").is_file():
        raise ValueError(f"--app-assets {args.app_assets}: no manifest.json there; give the assets folder that "
                         "`edge-age android install` wrote")
    devices = [open_device(spec, ssh_config=args.ssh_config, python=args.remote_python,
                           benchmark_binary=args.benchmark_binary, use_gpu=args.use_gpu, use_nnapi=args.use_nnapi,
                           cores=args.cores, app_stages=args.app_stages) for spec in args.device]
    rows = run_benchmark(find_exports(Path(args.exports)), Path(args.out or "reports/benchmark"), scoring, threads,
                         args.runs, args.batch, command="edge-age benchmark " + shlex.join(sys.argv[2:]),
                         devices=devices, app_assets=Path(args.app_assets) if args.app_assets else None)
    # A file that could not be measured (changed since export, or its runtime failed) is not a clean result.
    return 1 if any(r["status"] in ("failed to run", "file changed") for r in rows) else 0


