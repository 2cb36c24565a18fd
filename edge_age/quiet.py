"""Third-party noise filtered at its source, so the warnings that matter are seen (``--verbose`` shows it all).

What is filtered, and why it says nothing to a user of edge-age:
* torch.onnx's "torchvision is not installed. Skipping torchvision::nms ..." (edge-age does not use torchvision);
* torch's pytree note on KernelPreference enums (an internal deprecation inside torchao), and torchao's
  "Failed to load ..._C_cutlass_90a.abi3.so" (its CUDA kernels; edge-age quantises on the CPU);
* coremltools' "Failed to load _MLModelProxy ..." lines (Core ML cannot run on Linux: the exporter says so itself)
  and its untested-torch-version note, its per-pass progress bars and the ~300 deprecation warnings its own
  frontend raises per conversion;
* LiteRT's C++ INFO lines ("Estimated count of arithmetic ops", oneDNN notes) via TF_CPP_MIN_LOG_LEVEL=2, and the
  lines native code writes before that setting applies: litert-torch's converter library's absl and oneDNN notes
  as it loads, LiteRT's "Created TensorFlow Lite XNNPACK delegate" (``native_load_lines_hidden``);
* litert-torch's per-step progress lines ("[START] LiteRT-Torch Convert > ...") via LITERT_TORCH_SHOW_PROGRESS=n;
* ai-edge-quantizer's report per quantised file ("Original model size ...") and its progress bars (one of them
  ignores the call's enable_progress_bar=False), see ``quantizer_progress_hidden``;
* torch's FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated", raised inside torchao's PT2E
  quantisation (not our code), once per int8 TFLite export.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

QUIET_LOGGERS = ("coremltools", "torch.onnx._internal.exporter._registration", "torch.utils._pytree", "absl",
                 "torchao")


def quiet_third_party(verbose: bool = False) -> None:
    """Call once, before the noisy libraries load."""
    if verbose or os.environ.get("EDGE_AGE_VERBOSE"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    for name in QUIET_LOGGERS:  # a filter, not a level: torch resets its loggers' levels when it configures logging
        logger = logging.getLogger(name)
        if _errors_only not in logger.filters:
            logger.addFilter(_errors_only)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


# coremltools' progress bars: (module, name of its tqdm there)
COREML_PROGRESS = (("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
                   ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
                   ("coremltools.optimize.coreml._quantization_passes", "tqdm"))


@contextlib.contextmanager
def coreml_progress_hidden():
    """coremltools draws a progress bar per conversion step on stderr; an export log needs none of them."""
    if os.environ.get("EDGE_AGE_VERBOSE"):
        yield
        return
    import importlib

    import warnings

    patched = []
    for module_name, attribute in COREML_PROGRESS:
        module = importlib.import_module(module_name)
        if hasattr(module, attribute):
            patched.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, lambda iterable=None, **_: iterable)
    try:
        with warnings.catch_warnings():
            # coremltools' own frontend calls its deprecated op registry ~300 times per conversion
            warnings.filterwarnings("ignore", message="Function _TORCH_OPS_REGISTRY", category=DeprecationWarning)
            yield
    finally:
        for module, attribute, shown in patched:
            setattr(module, attribute, shown)


@contextlib.contextmanager
def quantizer_progress_hidden():
    """ai-edge-quantizer draws "Applying Transformations to tensors" for larger models whatever quantize() is
    told (its transformation step is not passed the flag): its bars stay off while an export quantises."""
    from ai_edge_quantizer.utils import progress_utils

    shown = progress_utils.ProgressBar
    if os.environ.get("EDGE_AGE_VERBOSE"):
        yield
        return

    class Hidden(shown):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "enable": False})

    progress_utils.ProgressBar = Hidden
    try:
        yield
    finally:
        progress_utils.ProgressBar = shown


# What native code writes straight to file descriptor 2 as it starts, past TF_CPP_MIN_LOG_LEVEL: litert-torch's
# converter library (litert_converter) logs through absl before absl is initialised, and LiteRT's interpreter
# announces its CPU delegate.
NATIVE_LOAD_NOISE = re.compile(r"All log messages before absl::InitializeLog\(\)|port\.cc:\d+\] oneDNN custom operations"
                               r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.")


@contextlib.contextmanager
def native_load_lines_hidden():
    """Capture file descriptor 2 while a native library loads or starts; write back every line but NATIVE_LOAD_NOISE."""
    if os.environ.get("EDGE_AGE_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", errors="replace").splitlines(keepends=True):
                if not NATIVE_LOAD_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
