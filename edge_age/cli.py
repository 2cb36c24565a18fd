"""The ``edge-age`` command: one entry point, one subcommand per stage.

Each stage package (train/, export/, benchmark/) exposes ``add_arguments(parser)`` and ``run(args)``;
they are imported only when their subcommand runs, so ``edge-age models`` stays quick.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from edge_age.quiet import quiet_third_party

# subcommand -> (module with add_arguments/run, one-line help)
SUBCOMMANDS = {
    "models": ("edge_age.models_table", "list the registered models: parameters, FLOPs, input spec, outputs"),
    "train": ("edge_age.train.cli", "train a model with a named recipe into a run folder"),
    "train-speed": ("edge_age.train.speed", "measure training images/s and data-wait share per recipe on this machine"),
    "train-ablation": ("edge_age.train.ablation", "train the phone recipe once per change at a reduced budget: which pieces lower validation MAE"),
    "shrink-checkpoint": ("edge_age.checkpoint", "a weights-only copy of a best.pt in fp16 or int8, to publish a run under 20 MB"),
    "export": ("edge_age.export.cli", "export a trained run to ONNX / TFLite / Core ML and check each file against PyTorch"),
    "pipeline": ("edge_age.pipeline", "train -> export -> benchmark the four models (reuses finished stages)"),
    "benchmark": ("edge_age.benchmark.cli", "accuracy, latency, size and FLOPs of every exported variant; the seeds' claims and the phone model's targets judged"),
    "predict": ("edge_age.predict", "age and gender of every face in photos, with a checkpoint, .onnx or .tflite file"),
    "face-benchmark": ("edge_age.benchmark.faces", "dlib's detection rate, time per image and crop overlap on real UTKFace chips"),
    "android": ("edge_age.export.android", "install an export into the Android demo, check it, write the Java core's golden vectors"),
    "evaluate": ("edge_age.evaluate", "a model file on any labelled set (UTKFace names or a CSV), optionally aligned by dlib"),
}

# Errors that describe bad input: shown as one line, without a traceback (EDGE_AGE_DEBUG=1 shows it).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError, ImportError)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-age", description=__doc__.splitlines()[0],
                                     epilog="edge-age --verbose COMMAND ... also shows third-party warnings and "
                                            "progress bars (edge_age/quiet.py lists what is filtered)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the stage that runs
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--verbose" in argv[:1]:  # edge-age --verbose COMMAND ...: third-party warnings and progress bars too
        os.environ["EDGE_AGE_VERBOSE"] = "1"
        argv = argv[1:]
    quiet_third_party()
    warnings.showwarning = _one_line_warning
    args = build_parser(argv).parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        print("edge-age: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if os.environ.get("EDGE_AGE_DEBUG"):
            raise
        print(f"edge-age {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings (skipped files, rejected label rows) as one line each, without a source excerpt."""
    print(f"edge-age: warning: {message}", file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
