"""The table of export formats: one module per format, one line per format in ``_MODULES``.

Each format module defines ``FORMAT``, a ``Format`` that says everything a stage needs: its file suffix and
layout, the precisions it offers, how to export a model to it, how to run its files here (a runner class, or
why not), and which pip extra brings its libraries. The exporter, the parity check, the benchmark, ``predict``,
``evaluate``, the pipeline and the command-line choices all iterate this table, so a format missing from one of
them cannot silently become "not measured". Modelled on Ultralytics' ``export_formats()``.

Nothing here or in a format module imports torch at the top: running a file (a benchmark's measuring process, a
board) needs only its runtime; exporting one imports torch where it traces the model (``deploy``).
"""
from __future__ import annotations

import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# What every exported file returns, in this order.
OUTPUT_NAMES = ["age", "gender"]

# Add a format: write edge_age/formats/NAME.py with a FORMAT, then add NAME here.
_MODULES = ("onnx", "tflite", "coreml")


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str  # file suffix (a Core ML package is a folder)
    precisions: tuple[str, ...]  # what the exporter offers; "int8..." variants are judged by the int8 thresholds
    layout: str  # NCHW or NHWC input
    extra: str  # the pip extra that installs its libraries: pip install -e ".[extra]"
    # export(model, precision, calibration, path, metadata, workdir, **options) -> None; workdir lives for one
    # export run of one model, where the format keeps the float conversion its other variants start from
    export: Callable
    runner: type | None = None  # class(path, threads) -> Runner, or None where its files cannot run here
    not_runnable_because: str = ""  # why runner is None, in words
    check: Callable | None = None  # check(path, precision, size) -> dict with status/reason, where it cannot run
    export_options: tuple[str, ...] = ()  # keyword options its export takes (e.g. int8_outputs)
    op_counts: Callable | None = None  # op_counts(path) -> {op type: count}, to see what a file really computes
    delegate_partitions: Callable | None = None  # delegate_partitions(path) -> partitions the host's delegate makes
    time_by_op_kind: Callable | None = None  # time_by_op_kind(path, threads, runs) -> {kind: us per call}, a profile
    description: str = ""
    notes: dict = field(default_factory=dict)

    def input_shape(self, size: int) -> list:
        if self.layout == "NHWC":
            return [1, size, size, 3]
        return ["batch", 3, size, size] if self.dynamic_batch else [1, 3, size, size]

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.notes.get("dynamic_batch"))

    def variants(self, precisions: list[str]) -> list[str]:
        """The asked precisions this format offers (asking int8 gives every int8 variant, e.g. int8-dynamic)."""
        return [p for p in self.precisions if p.split("-")[0] in precisions]


def formats() -> dict[str, Format]:
    """Every format, by name, in table order."""
    return {module.FORMAT.name: module.FORMAT for module in
            (importlib.import_module(f"edge_age.formats.{name}") for name in _MODULES)}


def get(name: str) -> Format:
    table = formats()
    if name not in table:
        raise ValueError(f"unknown format {name!r}; choose from {', '.join(table)}")
    return table[name]


def by_suffix(suffix: str) -> Format | None:
    return next((f for f in formats().values() if f.suffix == suffix), None)


def all_precisions() -> list[str]:
    """Every precision some format offers, as a user asks for them (fp32, fp16, int8)."""
    return sorted({p.split("-")[0] for f in formats().values() for p in f.precisions})


def require(extra: str, module: str):
    """Import an optional dependency or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed ({err}); install it with: pip install -e \".[{extra}]\"") from None


def float_conversion(workdir: Path, name: str, convert: Callable[[Path], None]) -> Path:
    """The model's float file in one format, made once per export run and shared by that format's variants.

    Tracing and converting the model is most of an export's time, and every float or weight-quantised variant
    (fp32, fp16, int8-dynamic; ONNX int8 too) starts from the same float file. ``workdir`` lives for one export run
    of one model (the exporter's staging folder), so the file can never belong to another model. ``convert(path)``
    writes it; a conversion that fails leaves nothing behind for the next variant to pick up.
    """
    path = workdir / name
    if not path.exists():
        partial = workdir / f".partial-{name}"
        try:
            convert(partial)
            os.replace(partial, path)
        finally:
            if partial.is_dir():
                shutil.rmtree(partial)
            elif partial.exists():
                partial.unlink()
    return path
