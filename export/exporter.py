"""Export a trained model to every requested format and precision, prove each file against PyTorch on
real images, and write the export folder's manifest.json.

A variant that fails to export or fails parity is recorded with its reason and never stops the others.
Files are written under a temporary name and renamed into place; manifest.json is written last, so an
interrupted export never looks complete.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.io import atomic_write_json, sha256_file
from edge_age.registry import OUTPUT_MEANINGS, AgeGenderModel
from edge_age.runtimes import OUTPUT_NAMES, open_runner
from export.formats import EXPORTERS, EXTRA_FOR, PRECISIONS, SUFFIX, DeployModel

MANIFEST_FORMAT = "edge-age-export/1"
# Raised whenever a change alters what exported files contain, so `edge-age pipeline` redoes older exports.
# 2: MA-SFV2's full-int8 TFLite channel joins as padded adds (concat fix), standard TFLite metadata.
EXPORTER_REVISION = 2
# Parity thresholds, the one place they are written. Float variants: the largest age difference from
# PyTorch over the parity images. int8 variants: the change in age MAE and in gender accuracy.
THRESHOLDS = {
    "fp32": {"age_max_diff_years": 0.01},
    "fp16": {"age_max_diff_years": 0.1},
    "int8": {"mae_change_years": 0.25, "gender_accuracy_change_points": 1.0},
}


def threshold_kind(precision: str) -> str:
    return "int8" if precision.startswith("int8") else precision


def resolve_checkpoint(run: str | Path | None, checkpoint: str | Path | None) -> tuple[Path, Path | None]:
    """--run DIR (its best.pt) or --checkpoint FILE -> (checkpoint path, run folder or None)."""
    if run is not None:
        run = Path(run)
        if not (run / "best.pt").is_file():
            raise FileNotFoundError(f"{run} holds no best.pt: is it a finished `edge-age train` run folder?")
        return run / "best.pt", run
    if checkpoint is None:
        raise ValueError("give --run RUN_FOLDER or --checkpoint FILE")
    return Path(checkpoint), None


def real_images(model: AgeGenderModel, run_dir: Path | None, data: str | None, calib_count: int,
                parity_count: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Calibration images from the training split and parity images from the test split (topped up from
    validation if the test split is small), both as normalised float32 NCHW through the model's spec."""
    config = json.loads((run_dir / "config.json").read_text()) if run_dir and (run_dir / "config.json").exists() else {}
    labelled = load_labelled(resolve_run_data_dir(data, config.get("data_root")))
    size = model.input_spec.size
    if run_dir is not None and (run_dir / "split.json").exists():
        split = load_split(run_dir / "split.json")
    else:  # a bare checkpoint: a fixed draw from the folder
        from edge_age.data import make_split
        split = make_split(labelled, seed=0)
    rng = np.random.default_rng(0)

    def pick(names, count):
        part = decoded_cache(apply_split(labelled, split, names), size, verbose=False)
        order = rng.permutation(len(part))[:count]
        return np.array(part.pixels[np.sort(order)]), part.data.select(np.sort(order))

    calib_pixels, _ = pick("train", calib_count)
    parity_pixels, parity_data = pick("test", parity_count)
    source = {"test": len(parity_pixels)}
    if len(parity_pixels) < parity_count:
        extra, extra_data = pick("val", parity_count - len(parity_pixels))
        parity_pixels = np.concatenate([parity_pixels, extra])
        parity_data.ages = np.concatenate([parity_data.ages, extra_data.ages])
        parity_data.genders = np.concatenate([parity_data.genders, extra_data.genders])
        source["val"] = len(extra)
    spec = model.input_spec
    to_input = lambda px: spec.normalize(torch.from_numpy(px)).numpy().astype(np.float32)  # noqa: E731
    labels = {"ages": parity_data.ages, "genders": parity_data.genders, "source": source}
    return to_input(calib_pixels), to_input(parity_pixels), labels


def parity(runner, reference: tuple[np.ndarray, np.ndarray], images: np.ndarray, labels: dict, precision: str) -> dict:
    """Compare a runtime's answers with PyTorch's on the same inputs, and judge them against THRESHOLDS."""
    age, gender = runner(images)
    ref_age, ref_gender = reference
    ages, genders = labels["ages"], labels["genders"]
    result = {
        "n": int(len(images)),
        "age_max_diff_years": float(np.abs(age - ref_age).max()),
        "age_mean_diff_years": float(np.abs(age - ref_age).mean()),
        "gender_prob_max_diff": float(np.abs(gender - ref_gender).max()),
        "gender_prob_mean_diff": float(np.abs(gender - ref_gender).mean()),
        "mae_pytorch": float(np.abs(ref_age - ages).mean()),
        "mae_file": float(np.abs(age - ages).mean()),
    }
    # From counts, so that two flipped images in 200 are exactly 1.0 point, not 1.0000000000000009.
    right_pytorch, right_file = int(((ref_gender > 0.5) == genders).sum()), int(((gender > 0.5) == genders).sum())
    result["gender_accuracy_pytorch"] = right_pytorch / len(images)
    result["gender_accuracy_file"] = right_file / len(images)
    result["mae_change_years"] = result["mae_file"] - result["mae_pytorch"]
    result["gender_accuracy_change_points"] = 100.0 * (right_file - right_pytorch) / len(images)
    limits = THRESHOLDS[threshold_kind(precision)]
    failures = []
    if "age_max_diff_years" in limits and not result["age_max_diff_years"] < limits["age_max_diff_years"]:
        failures.append(f"age max diff {result['age_max_diff_years']:.4g} y >= {limits['age_max_diff_years']}")
    if "mae_change_years" in limits and not abs(result["mae_change_years"]) <= limits["mae_change_years"]:
        failures.append(f"MAE change {result['mae_change_years']:+.3f} y exceeds {limits['mae_change_years']}")
    if "gender_accuracy_change_points" in limits and \
            not abs(result["gender_accuracy_change_points"]) <= limits["gender_accuracy_change_points"]:
        failures.append(f"gender accuracy change {result['gender_accuracy_change_points']:+.2f} points exceeds "
                        f"{limits['gender_accuracy_change_points']}")
    if not (np.isfinite(age).all() and np.isfinite(gender).all()):
        failures.append("non-finite outputs")
    result["status"] = "fail" if failures else "pass"
    result["reason"] = "; ".join(failures)
    return result


def check_coreml(path: Path, precision: str, size: int) -> dict:
    """What Linux can check of a Core ML package: it loads as a spec, its names and shapes, quantised ops."""
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    inputs = {i.name: i for i in spec.description.input}
    outputs = [o.name for o in spec.description.output]
    problems = []
    if list(inputs) != ["image"]:
        problems.append(f"inputs {list(inputs)} != ['image']")
    if outputs != OUTPUT_NAMES:
        problems.append(f"outputs {outputs} != {OUTPUT_NAMES}")
    ops = [op.type for f in spec.mlProgram.functions.values() for block in f.block_specializations.values()
           for op in block.operations]
    quantised_ops = sum("constexpr" in op for op in ops)
    if precision == "int8" and quantised_ops == 0:
        problems.append("no quantised-weight (constexpr) ops found")
    return {"status": "fail" if problems else "needs-macos", "reason": "; ".join(problems) or
            "structure checked on Linux (loads, names, shapes, quantised ops); numeric parity needs macOS",
            "ops": len(ops), "quantised_weight_ops": quantised_ops,
            "metadata": dict(mlmodel.user_defined_metadata)}


def export_model(checkpoint: Path, out_dir: Path, formats: list[str], precisions: list[str], run_dir: Path | None = None,
                 data: str | None = None, calib_images: int = 256, parity_images: int = 200,
                 int8_outputs: bool = False) -> dict:
    """Export every (format, precision) pair; returns the manifest (also written to out_dir/manifest.json).
    ``int8_outputs``: the full-integer TFLite file gets int8 output tensors as well as an int8 input."""
    for fmt in formats:
        if fmt not in EXPORTERS:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(EXPORTERS)}")
    known = {"fp32", "fp16", "int8"}
    for precision in precisions:
        if precision not in known:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(sorted(known))}")
    model, payload = load_model(checkpoint)
    _writable(out_dir)
    spec = model.input_spec
    calibration, parity_inputs, labels = real_images(model, run_dir, data, calib_images, parity_images)
    with torch.no_grad():
        reference = tuple(t.numpy() for t in DeployModel(model).eval()(torch.from_numpy(parity_inputs)))
    manifest = {
        "format": MANIFEST_FORMAT,
        "exporter_revision": EXPORTER_REVISION,
        "model": payload["model"],
        "source": {"run": str(run_dir) if run_dir else None, "checkpoint": str(checkpoint),
                   "checkpoint_sha256": sha256_file(checkpoint), "epoch": payload.get("epoch")},
        "input": {"name": "image", **spec.to_dict(),
                  "preprocessing": "RGB face crop resized to size x size (bilinear), x/255, then (x - mean) / std"},
        "outputs": [{"name": "age", "meaning": OUTPUT_MEANINGS["age"]},
                    {"name": "gender", "meaning": "P(female): sigmoid of the gender logit; > 0.5 means female"}],
        "age_output": getattr(model, "age_output", "age"),
        "thresholds": THRESHOLDS,
        "parity_images": {"n": len(parity_inputs), "from": labels["source"]},
        "calibration_images": {"n": len(calibration), "from": "train"},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "files": [],
    }
    embedded = {"edge_age": json.dumps({k: manifest[k] for k in ("model", "input", "outputs", "age_output")})}
    partial = out_dir / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        for precision in _variants(fmt, precisions):
            name = f"{payload['model']['name']}_{precision}{SUFFIX[fmt]}"
            entry = {"file": name, "format": fmt, "precision": precision,
                     "layout": "NHWC" if fmt == "tflite" else "NCHW",
                     "input_shape": [1, spec.size, spec.size, 3] if fmt == "tflite" else
                                    (["batch", 3, spec.size, spec.size] if fmt == "onnx" else [1, 3, spec.size, spec.size])}
            print(f"export {fmt} {precision} -> {out_dir / name}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            tmp_path, final_path = partial / name, out_dir / name
            try:
                options = {"int8_outputs": int8_outputs} if fmt == "tflite" else {}
                EXPORTERS[fmt](model, precision, calibration, tmp_path, embedded, **options)
            except Exception as err:  # one failing variant must not stop the others
                _remove(tmp_path)
                entry.update(status="export-failed", reason=f"{type(err).__name__}: {str(err).strip()[:400]}")
                if isinstance(err, ImportError):
                    entry["reason"] += f" (pip install -e \".[{EXTRA_FOR[fmt]}]\")"
                manifest["files"].append(entry)
                print(f"  export failed: {entry['reason']}", file=sys.stderr)
                continue
            _remove(final_path)
            tmp_path.rename(final_path)
            entry["export_seconds"] = round(time.perf_counter() - started, 1)
            entry["bytes"] = _size(final_path)
            entry["sha256"] = sha256_file(final_path) if final_path.is_file() else None
            try:
                if fmt == "coreml":
                    entry.update(check_coreml(final_path, precision, spec.size))
                else:
                    runner = open_runner(final_path)
                    if fmt == "tflite":
                        entry.update(runner.tensor_specs())
                    entry["parity"] = parity(runner, reference, parity_inputs, labels, precision)
                    entry.update(status=entry["parity"]["status"], reason=entry["parity"]["reason"])
            except Exception as err:
                entry.update(status="fail", reason=f"could not run in its runtime: {type(err).__name__}: {str(err)[:300]}")
            print(f"  {entry['status']} {entry.get('reason', '')}", file=sys.stderr)
            manifest["files"].append(entry)
    shutil.rmtree(partial, ignore_errors=True)
    _remove_stale_files(out_dir, {entry["file"] for entry in manifest["files"]})
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def _remove_stale_files(out_dir: Path, current: set[str]) -> None:
    """Files of an earlier export into the same folder that this export did not write (another model, other
    precisions): left in place they would sit beside a manifest that does not describe them."""
    old_manifest = out_dir / "manifest.json"
    if not old_manifest.is_file():
        return
    try:
        previous = {entry["file"] for entry in json.loads(old_manifest.read_text()).get("files", [])}
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
        return
    for name in sorted(previous - current):
        if (out_dir / name).exists() and Path(name).name == name:
            print(f"removing {out_dir / name}: left from an earlier export, not part of this one", file=sys.stderr)
            _remove(out_dir / name)


def _variants(fmt: str, precisions: list[str]) -> list[str]:
    """The requested precisions that this format offers (TFLite int8 gives both int8 variants)."""
    return [p for p in PRECISIONS[fmt] if p.split("-")[0] in precisions]


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write to the output folder {out_dir}: {err.strerror}") from None


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
