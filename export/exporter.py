"""Export a trained model to every requested format and precision, prove each file against PyTorch on
real images, and write the export folder's manifest.json.

A variant that fails to export or fails parity is recorded with its reason and never stops the others.
Files are written in a private staging folder and renamed into place; manifest.json (edge_age.manifest)
is rewritten after each file, so an interrupted export lists exactly what it finished. Nothing in the
output folder that an earlier edge-age export did not write is ever overwritten or removed.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.io import atomic_write_bytes, ordinary_permissions, sha256_file, sha256_path
from edge_age.manifest import NAME as MANIFEST_NAME
from edge_age.manifest import SPLIT_NAME, FileEntry, Manifest, read_manifest, relative_to_folder
from edge_age.models.age_bins import median_shift
from edge_age.registry import OUTPUT_MEANINGS, AgeGenderModel
from edge_age import formats as format_table
from edge_age.formats.deploy import DeployModel
from edge_age.runtimes import open_runner

# Raised whenever a change alters what exported files contain, so `edge-age pipeline` redoes older exports.
# 2: MA-SFV2's full-int8 TFLite channel joins as padded adds (concat fix), standard TFLite metadata.
# 3: ONNX int8 keeps the heads the model declares in float (the old node-name guess matched none, so the heads
#    were quantised too) and fuses ReLU/ReLU6 into the convolutions; TFLite full-int8 fuses conv + ReLU6; each
#    file entry records the revision that wrote it.
# 4: ONNX files no longer carry torch.onnx's stack traces (the exporting machine's paths).
# 5: TFLite full-int8 trunks integer throughout: adds, concatenations and data movement annotated (no float
#    islands between DEQUANTIZE and QUANTIZE); MA-SFV2's joins are plain concatenations again.
# 6: MA-SFV2's stem max-pool pads with zeros (a PAD, not a PADV2 with -inf): XNNPACK takes its whole graph.
# 7: ONNX int8 with u8 activations: onnxruntime fuses every convolution into QLinearConv and runs its faster
#    x86 kernels.
# 8: EfficientNet-Lite's "age" output is the median of its 101 bins (it was their expectation); the manifest's
#    age_output says which, and the benchmark gives no PyTorch row to an export that reads it otherwise.
# 9: the median reading's clamp(0, 1) no longer exports as RELU_0_TO_1, which XNNPACK does not run: every
#    EfficientNet-Lite TFLite file is one delegate partition again (it was two since revision 8).
EXPORTER_REVISION = 9
# Parity thresholds, the one place they are written. Float variants: the largest age difference from
# PyTorch over the parity images. fp16, for a model that reads its age as the median of 101 bins: a face whose age
# moved by more still agrees if the file's age lies within median_max_shift of probability mass of PyTorch's
# median (edge_age.models.age_bins.median_shift). Where the model spreads its belief thinly, rounding the weights
# to fp16 moves the median by years while moving the distribution by under 1%: phone v3's fp16 file, over 2,000
# test faces, moved 31 faces by more than 0.1 year and one by 2.6 years, but no face by more than 0.010 of its mass
# (99th percentile 0.004); its int8 file, rounded far more coarsely, moves half the faces by more than 0.018.
# int8 variants: the change in age MAE and in gender accuracy.
THRESHOLDS = {
    "fp32": {"age_max_diff_years": 0.01},
    "fp16": {"age_max_diff_years": 0.1, "median_max_shift": 0.02},
    "int8": {"mae_change_years": 0.25, "gender_accuracy_change_points": 1.0},
}
# Real test images each file is compared on. At 1,000 a point of gender accuracy is 10 faces: at 200 it was 2, and
# the phone model's dynamic-range int8 file failed on 3 borderline faces out of 200 while passing on 2,000.
DEFAULT_PARITY_IMAGES = 1000


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
    labelled = load_labelled(resolve_run_data_dir(data, config.get("data_root"), run_dir))
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


def parity(runner, reference: dict, images: np.ndarray, labels: dict, precision: str) -> dict:
    """Compare a runtime's answers with PyTorch's on the same inputs, and judge them against THRESHOLDS.
    ``reference``: PyTorch's "age" and "gender" (P(female)), and "age_probs" (N x 101) for a median reading."""
    age, gender = runner(images)
    ref_age, ref_gender, ref_probs = reference["age"], reference["gender"], reference.get("age_probs")
    ages, genders = labels["ages"], labels["genders"]
    age_diff = np.abs(age - ref_age)
    result = {
        "n": int(len(images)),
        "age_max_diff_years": float(age_diff.max()),
        "age_mean_diff_years": float(age_diff.mean()),
        "gender_prob_max_diff": float(np.abs(gender - ref_gender).max()),
        "gender_prob_mean_diff": float(np.abs(gender - ref_gender).mean()),
        "mae_pytorch": float(np.abs(ref_age - ages).mean()),
        "mae_file": float(np.abs(age - ages).mean()),
    }
    limits = THRESHOLDS[threshold_kind(precision)]
    failures = []
    if "age_max_diff_years" in limits:
        moved = age_diff >= limits["age_max_diff_years"]
        if ref_probs is not None and "median_max_shift" in limits:
            shift = median_shift(ref_probs, age)
            result["median_max_shift"] = float(shift.max())
            moved &= shift >= limits["median_max_shift"]
        result["age_faces_moved"] = int(moved.sum())
        if moved.any():
            beyond = f">= {limits['age_max_diff_years']} y"
            if "median_max_shift" in result:
                beyond += f" and >= {limits['median_max_shift']} of the probability mass from PyTorch's median"
            failures.append(f"age moved {beyond} on {int(moved.sum())} of {len(images)} faces "
                            f"(max diff {result['age_max_diff_years']:.4g} y)")
    # From counts, so that two flipped images in 200 are exactly 1.0 point, not 1.0000000000000009.
    right_pytorch, right_file = int(((ref_gender > 0.5) == genders).sum()), int(((gender > 0.5) == genders).sum())
    result["gender_accuracy_pytorch"] = right_pytorch / len(images)
    result["gender_accuracy_file"] = right_file / len(images)
    result["mae_change_years"] = result["mae_file"] - result["mae_pytorch"]
    result["gender_accuracy_change_points"] = 100.0 * (right_file - right_pytorch) / len(images)
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


def check_export_request(out_dir: Path, formats: list[str], precisions: list[str], calib_images: int,
                         parity_images: int) -> None:
    """Every option checked before the long work starts."""
    table = format_table.formats()
    if not formats:
        raise ValueError("--formats is empty; choose from " + ", ".join(table))
    if not precisions:
        raise ValueError("--precisions is empty; choose from " + ", ".join(format_table.all_precisions()))
    for fmt in formats:
        format_table.get(fmt)
    for precision in precisions:
        if precision not in format_table.all_precisions():
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(format_table.all_precisions())}")
    if calib_images < 1 or parity_images < 1:
        raise ValueError(f"--calib-images and --parity-images must be positive, got {calib_images} and {parity_images}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; choose a folder for the export")


def plan_output(out_dir: Path, checkpoint_sha256: str, names: list[str], clean: bool) -> list[FileEntry]:
    """What an earlier export in ``out_dir`` leaves standing: the entries of the same checkpoint that this export
    does not redo (a re-export of a subset keeps the rest). Refuses, before any work, to overwrite a file this
    tool did not write, or to mix two checkpoints in one folder; ``clean`` removes the earlier export's own files."""
    previous = read_manifest(out_dir) if (out_dir / MANIFEST_NAME).is_file() else None
    if previous is not None and (clean or previous.source.get("checkpoint_sha256") != checkpoint_sha256):
        if not clean:
            raise FileExistsError(f"{out_dir} holds an export of another checkpoint "
                                  f"({previous.model.get('name')}, {previous.source.get('checkpoint')}); choose "
                                  "another --out, or pass --clean to remove that export's files first")
        for entry in previous.files:
            _remove_own(previous.path(entry), entry)
        if previous.split_file is not None:
            _remove_own(previous.split_file, None)
        (out_dir / MANIFEST_NAME).unlink()
        previous = None
    ours = {e.file for e in previous.files} | ({SPLIT_NAME} if previous.split_file else set()) if previous else set()
    strangers = [name for name in names if (out_dir / name).exists() and name not in ours]
    if strangers:
        raise FileExistsError(f"{out_dir} already has {', '.join(strangers)}, which no manifest there lists: not "
                              "written by edge-age export, so it is left alone; move it or choose another --out")
    return [e for e in previous.files if e.file not in names] if previous else []


def export_model(checkpoint: Path, out_dir: Path, formats: list[str], precisions: list[str], run_dir: Path | None = None,
                 data: str | None = None, calib_images: int = 256, parity_images: int = DEFAULT_PARITY_IMAGES,
                 int8_outputs: bool = False, clean: bool = False) -> Manifest:
    """Export every (format, precision) pair and write out_dir/manifest.json. Variants of the same checkpoint
    exported earlier into ``out_dir`` are kept; ``int8_outputs``: the full-integer TFLite file gets int8 output
    tensors as well as an int8 input."""
    out_dir = Path(out_dir)
    check_export_request(out_dir, formats, precisions, calib_images, parity_images)
    model, payload = load_model(checkpoint)
    checkpoint_sha256 = sha256_file(checkpoint)
    wanted = [(fmt, precision, f"{model.file_stem}_{precision}{format_table.get(fmt).suffix}")
              for fmt in formats for precision in format_table.get(fmt).variants(precisions)]
    split_file = run_dir / "split.json" if run_dir is not None and (run_dir / "split.json").is_file() else None
    kept = plan_output(out_dir, checkpoint_sha256, [name for _, _, name in wanted] + ([SPLIT_NAME] if split_file else []),
                       clean)
    _writable(out_dir)
    spec = model.input_spec
    calibration, parity_inputs, labels = real_images(model, run_dir, data, calib_images, parity_images)
    with torch.no_grad():
        inputs = torch.from_numpy(parity_inputs)
        ref_age, ref_gender = DeployModel(model).eval()(inputs)
        reference = {"age": ref_age.numpy(), "gender": ref_gender.numpy()}
        if getattr(model, "age_output", None) == "median":  # the distribution each median is read from
            reference["age_probs"] = torch.softmax(model.eval()(inputs)["age_logits"], dim=1).numpy()
    header = {
        "exporter_revision": EXPORTER_REVISION,
        "model": payload["model"],
        "source": {"run": relative_to_folder(run_dir, out_dir), "checkpoint": relative_to_folder(checkpoint, out_dir),
                   "checkpoint_sha256": checkpoint_sha256, "epoch": payload.get("epoch")},
        "input": {"name": "image", **spec.to_dict(),
                  "preprocessing": "RGB face crop resized to size x size (bilinear), x/255, then (x - mean) / std"},
        "outputs": [{"name": "age", "meaning": OUTPUT_MEANINGS["age"]},
                    {"name": "gender", "meaning": "P(female): sigmoid of the gender logit; > 0.5 means female"}],
        "age_output": getattr(model, "age_output", "age"),
        "thresholds": THRESHOLDS,
        "parity_images": {"n": len(parity_inputs), "from": labels["source"]},
        "calibration_images": {"n": len(calibration), "from": "train"},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if split_file is not None:  # the run's split travels with the export, so a moved folder is still scored on it
        atomic_write_bytes(out_dir / SPLIT_NAME, split_file.read_bytes())
        header["split"] = {"file": SPLIT_NAME, "sha256": sha256_file(out_dir / SPLIT_NAME)}
    manifest = Manifest(out_dir, header, list(kept))
    embedded = {"edge_age": json.dumps({k: header[k] for k in ("model", "input", "outputs", "age_output")})}
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))  # ours alone, removed at the end
    try:
        for fmt, variants in itertools.groupby(wanted, key=lambda variant: variant[0]):
            workdir = staging / f"float-{fmt}"  # the format's float conversion, made once and shared by its variants
            workdir.mkdir()
            for _, precision, name in variants:
                entry = _export_variant(model, fmt, precision, name, staging, workdir, out_dir, calibration, embedded,
                                        int8_outputs, reference, parity_inputs, labels)
                manifest.files.append(entry)
                manifest.write()  # after every file, so an interrupted export keeps what it finished
            shutil.rmtree(workdir)  # done with (VGG16's float file is 0.5 GB)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    order = {name: i for i, (_, _, name) in enumerate(wanted)}
    manifest.files.sort(key=lambda e: (e.file in order, order.get(e.file, 0)))
    manifest.write()
    return manifest


def _export_variant(model, fmt, precision, name, staging, workdir, out_dir, calibration, embedded, int8_outputs,
                    reference, parity_inputs, labels) -> FileEntry:
    """Export one file into the staging folder, move it into place, and check it in its runtime."""
    size = model.input_spec.size
    spec = format_table.get(fmt)
    details = {"layout": spec.layout, "input_shape": spec.input_shape(size)}
    details["exporter_revision"] = EXPORTER_REVISION  # a re-export of some variants keeps older entries beside it
    entry = FileEntry(file=name, format=fmt, precision=precision, status="export-failed", details=details)
    print(f"export {fmt} {precision} -> {out_dir / name}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    tmp_path, final_path = staging / name, out_dir / name
    try:
        options = {"int8_outputs": int8_outputs} if "int8_outputs" in spec.export_options else {}
        spec.export(model, precision, calibration, tmp_path, embedded, workdir=workdir, **options)
    except Exception as err:  # one failing variant must not stop the others
        entry.reason = f"{type(err).__name__}: {str(err).strip()[:400]}"
        if isinstance(err, ImportError):
            entry.reason += f" (pip install -e \".[{spec.extra}]\")"
        print(f"  export failed: {entry.reason}", file=sys.stderr)
        return entry
    if final_path.is_dir() and not final_path.is_symlink():  # our own earlier .mlpackage (plan_output checked)
        shutil.rmtree(final_path)
    ordinary_permissions(tmp_path)
    os.replace(tmp_path, final_path)
    details["export_seconds"] = round(time.perf_counter() - started, 1)
    entry.bytes = _size(final_path)
    entry.sha256 = sha256_path(final_path)
    try:
        if spec.runner is None:  # cannot run here: what can be checked without its runtime
            checked = spec.check(final_path, precision, size)
            entry.status, entry.reason = checked.pop("status"), checked.pop("reason")
            details.update(checked)
        else:
            runner = open_runner(final_path)
            if hasattr(runner, "tensor_specs"):
                details.update(runner.tensor_specs())
            details["parity"] = parity(runner, reference, parity_inputs, labels, precision)
            entry.status, entry.reason = details["parity"]["status"], details["parity"]["reason"]
    except Exception as err:
        entry.status, entry.reason = "fail", f"could not run in its runtime: {type(err).__name__}: {str(err)[:300]}"
    print(f"  {entry.status} {entry.reason}", file=sys.stderr)
    return entry


def _remove_own(path: Path, entry: FileEntry | None) -> None:
    """--clean: remove one file an earlier export listed (already confined to its folder): a regular file, or the
    folder of a Core ML package; never a link, never anything else."""
    if path.is_symlink() or not path.exists():
        return
    if path.is_file():
        path.unlink()
    elif entry is not None and path.is_dir() and path.suffix == format_table.get(entry.format).suffix:
        shutil.rmtree(path)
    print(f"removed {path} (--clean: listed by the earlier export's manifest)", file=sys.stderr)


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write to the output folder {out_dir}: {err.strerror}") from None


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

