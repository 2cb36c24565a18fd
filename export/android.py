"""The Android demo's Python side: put an export's TFLite files into the app, check that the app's files agree
with each other, and write the golden vectors the app's Java core is tested against.

The phone crops a face almost as ``edge-age predict`` does. ML Kit gives two eye points, not dlib's five
landmarks, so the crop is the similarity that puts the eyes on ``faces.EYE_TEMPLATE``
(``faces.eye_alignment_transform``), and the camera frame is warped straight to the model's input size in
one bilinear pass instead of a 200 px chip resized. ``phone_pixels`` is that path in numpy, step for step what
android_demo/core's FaceCrop.java does, so the golden vectors pin the Java to the Python and to LiteRT.

    edge-age android install exports/published/custom_cnn-coursework-a   # files + manifest + golden vectors
    edge-age android check                                               # assets, manifest, metadata, vectors agree
"""
from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_age.cli_args import csv_list
from edge_age.faces import CHIP_SIZE, EYE_TEMPLATE, FaceAligner, eye_alignment_transform, eye_centres, largest
from edge_age.images import read_rgb
from edge_age.io import atomic_write_json, sha256_file
from edge_age.manifest import FileEntry, confined, read_manifest, relative_to_folder
from edge_age.formats.tflite import TFLiteRunner, tflite_metadata_records
from edge_age.runtimes import normalise_pixels

DEMO = Path(__file__).resolve().parent.parent / "android_demo"
DEFAULT_ASSETS = DEMO / "app" / "src" / "main" / "assets"
DEFAULT_GOLDEN = DEMO / "core" / "src" / "test" / "resources" / "golden.json"
# Real faces the committed vectors are made from (public domain; see android_demo/golden-images/README.md).
DEFAULT_GOLDEN_IMAGES = DEMO / "golden-images"
MANIFEST = "manifest.json"
# The app's manifest: a documented subset of the export manifest (model, input, outputs, source) plus the crop
# convention (alignment) and, per file, what the Java core needs (tensor dtypes, scales, zero points).
ANDROID_FORMAT = "edge-age-android/2"
DEFAULT_PRECISIONS = ("fp16", "int8")
# How closely a re-run of an asset must reproduce the raw outputs its golden vectors recorded.
OUTPUT_TOLERANCE = 1e-4


class AssetMismatch(ValueError):
    """The app's model files, manifest, embedded metadata or golden vectors disagree."""


def alignment_spec() -> dict:
    """The crop convention the app reads from its manifest (never hard-coded in the app)."""
    return {
        "method": "similarity from two eye centres (image-left eye, image-right eye) onto eye_template",
        "chip_size": CHIP_SIZE,
        "eye_template": EYE_TEMPLATE.tolist(),
        "coordinates": "continuous pixels: pixel k covers [k, k+1); output pixel centres sampled bilinearly",
        "outside": "black",
    }


def phone_pixels(rgb: np.ndarray, chip_to_image: np.ndarray, size: int) -> np.ndarray:
    """uint8 H x W x 3 -> float32 size x size x 3 in 0..255: each output pixel's centre, scaled to the
    CHIP_SIZE chip, is mapped into the image and sampled bilinearly; outside the image is black. Float64
    arithmetic in the same order as FaceCrop.java, so both give the same numbers."""
    height, width = rgb.shape[:2]
    steps = (np.arange(size) + 0.5) * (CHIP_SIZE / size)
    chip_x, chip_y = np.meshgrid(steps, steps)
    (a, b, c), (d, e, f) = chip_to_image
    x = a * chip_x + b * chip_y + c - 0.5  # to pixel-index coordinates (pixel k's centre is k)
    y = d * chip_x + e * chip_y + f - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]

    def tap(row, col):
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        values = rgb[np.clip(row, 0, height - 1).astype(int), np.clip(col, 0, width - 1).astype(int)]
        return np.where(inside[..., None], values.astype(np.float64), 0.0)

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def phone_input(rgb: np.ndarray, eye_left, eye_right, input_spec: dict) -> np.ndarray:
    """The float32 NHWC tensor (1 x size x size x 3) the app feeds a float model for this face."""
    pixels = phone_pixels(rgb, eye_alignment_transform(eye_left, eye_right), int(input_spec["size"]))
    return normalise_pixels(pixels[None], input_spec["mean"], input_spec["std"]).transpose(0, 2, 3, 1).copy()


# ---------------------------------------------------------------- installing an export into the app


def _rebased(provenance: dict, export_dir: Path, assets: Path) -> dict:
    """The export's provenance with its run and checkpoint paths, which the export records relative to its own
    folder, made relative to the app's assets folder, where the app manifest that carries them lives."""
    return {key: relative_to_folder(export_dir / value, assets) if key in ("run", "checkpoint") and value else value
            for key, value in provenance.items()}


def install(export_dir: Path, assets: Path = DEFAULT_ASSETS, precisions=DEFAULT_PRECISIONS,
            golden: Path | None = DEFAULT_GOLDEN, golden_images: list[Path] | None = None) -> dict:
    """Copy the export's TFLite files of ``precisions`` and an app manifest into ``assets``, check them, and
    rewrite the golden vectors. Only files whose parity check passed are installed."""
    export_dir, assets = Path(export_dir), Path(assets)
    if not precisions:
        raise ValueError("no precisions to install; give e.g. --precisions fp16,int8")
    source = read_manifest(export_dir)
    chosen = []
    for precision in precisions:
        entry = source.entry("tflite", precision)
        if entry is None:
            raise ValueError(f"{export_dir} has no TFLite {precision} file; it has "
                             f"{', '.join(e.file for e in source.files if e.format == 'tflite') or 'none'}")
        if entry.status != "pass":
            raise ValueError(f"{entry.file} failed its parity check ({entry.reason or entry.status}); "
                             "choose other --precisions (e.g. fp16,int8-dynamic)")
        problem = source.verify(entry)
        if problem:
            raise ValueError(f"{export_dir}: {problem}; nothing was installed")
        chosen.append(entry)
    previous = _installed_files(assets)  # refuses a manifest naming paths outside the assets before any change

    assets.mkdir(parents=True, exist_ok=True)
    # Stage beside the assets and check there first, so a refused export leaves the app's files as they were.
    with tempfile.TemporaryDirectory(dir=assets, prefix=".staging-") as staging_dir:
        staging = Path(staging_dir)
        for entry in chosen:
            shutil.copyfile(source.path(entry), staging / entry.file)
        manifest = {
            "format": ANDROID_FORMAT,
            "model": source.model,
            "input": source.input,
            "outputs": source.header["outputs"],
            "alignment": alignment_spec(),
            "source": {**_rebased(source.source, export_dir, assets), "export": relative_to_folder(export_dir, assets),
                       "export_created": source.header.get("created")},
            "files": [_describe_asset(staging / entry.file, entry) for entry in chosen],
        }
        atomic_write_json(staging / MANIFEST, manifest)
        check_assets(staging)
        strangers = [e.file for e in chosen if (assets / e.file).exists() and e.file not in previous]
        if strangers:
            raise FileExistsError(f"{assets} already has {', '.join(strangers)}, which the app manifest does not "
                                  "list: not installed by edge-age, so it is left alone; move it first")
        for name, path in previous.items():  # what the earlier install put there, nothing else
            if name not in {e.file for e in chosen} and path.is_file() and not path.is_symlink():
                path.unlink()
        for entry in chosen:
            (staging / entry.file).replace(assets / entry.file)
        (staging / MANIFEST).replace(assets / MANIFEST)
    if golden is not None:
        write_golden(assets, golden, golden_images or sorted(DEFAULT_GOLDEN_IMAGES.glob("*.png")))
    return manifest


def _installed_files(assets: Path) -> dict[str, Path]:
    """The model files an earlier install listed in the app manifest, each confined to the assets folder."""
    manifest_path = assets / MANIFEST
    if not manifest_path.is_file():
        return {}
    try:
        listed = json.loads(manifest_path.read_text()).get("files", [])
        names = [entry["file"] for entry in listed]
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as err:
        raise AssetMismatch(f"{manifest_path} is unreadable ({type(err).__name__}); it was not written by edge-age "
                            "android install, so nothing is changed: move it away and install again") from None
    return {name: confined(assets, name, str(manifest_path)) for name in names}


def shipped_sha256(assets: Path = DEFAULT_ASSETS, precision: str = "int8") -> str | None:
    """The sha256 the app's manifest records for its ``precision`` model file (None when the app ships none), so
    that the benchmark can tell which measured file is the one in the app."""
    manifest_path = assets / MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        listed = json.loads(manifest_path.read_text()).get("files", [])
        return next((entry["sha256"] for entry in listed if entry.get("precision") == precision), None)
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as err:
        raise AssetMismatch(f"{manifest_path} is unreadable ({type(err).__name__}); reinstall the app's model with "
                            "edge-age android install") from None


def _describe_asset(path: Path, export_entry) -> dict:
    runner = TFLiteRunner(path)
    return {
        "file": path.name,
        "precision": export_entry.precision,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "input_shape": [int(v) for v in runner.input["shape"]],
        **runner.tensor_specs(),  # the export manifest's shape: {dtype, scale, zero_point} per tensor
        "parity": export_entry.parity,
    }


def check_assets(assets: Path = DEFAULT_ASSETS) -> dict:
    """Raise AssetMismatch unless every file the app manifest lists is there with its hash, its TFLite input is
    1 x size x size x 3 of the listed dtype, it has the two outputs, and its embedded edge-age metadata
    says the same input size, normalisation, channel order and outputs as the manifest."""
    assets = Path(assets)
    manifest_path = assets / MANIFEST
    if not manifest_path.is_file():
        raise AssetMismatch(f"{manifest_path}: missing; install a model with `edge-age android install EXPORT_DIR`")
    try:
        manifest = json.loads(manifest_path.read_text())
        size = int(manifest["input"]["size"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise AssetMismatch(f"{manifest_path} is unreadable ({type(err).__name__}: {err})") from None
    problems = []
    for entry in manifest["files"]:
        path = confined(assets, entry.get("file"), str(manifest_path))
        if not path.is_file():
            problems.append(f"{entry['file']}: listed in the manifest but missing")
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['file']}: sha256 differs from the manifest (file replaced without reinstalling?)")
        try:
            actual = _describe_asset(path, FileEntry.from_dict({**entry, "format": "tflite", "status": "pass"},
                                                               str(manifest_path)))
        except Exception as err:  # one unreadable file is one problem in the report, never the end of the check
            problems.append(f"{entry['file']}: LiteRT cannot open it ({type(err).__name__}: {str(err)[:200]})")
            continue
        if actual["input_shape"] != [1, size, size, 3]:
            problems.append(f"{entry['file']}: input shape {actual['input_shape']}, manifest size {size} (NHWC)")
        for key in ("input_tensor", "output_tensors"):
            if actual[key] != entry[key]:
                problems.append(f"{entry['file']}: {key} is {actual[key]}, the manifest says {entry[key]}")
        records = tflite_metadata_records(path)
        if "edge_age" not in records:
            problems.append(f"{entry['file']}: carries no edge_age metadata")
            continue
        embedded = json.loads(records["edge_age"])
        for key in ("size", "mean", "std", "channel_order"):
            if embedded["input"].get(key) != manifest["input"].get(key):
                problems.append(f"{entry['file']}: metadata input {key} {embedded['input'].get(key)} "
                                f"!= manifest {manifest['input'].get(key)}")
        if [o["name"] for o in embedded["outputs"]] != [o["name"] for o in manifest["outputs"]]:
            problems.append(f"{entry['file']}: metadata outputs differ from the manifest's")
        problems += _standard_metadata_problems(path.name, records, manifest)
    listed = {entry["file"] for entry in manifest["files"]}
    problems += [f"{p.name}: in the assets but not in the manifest" for p in assets.glob("*.tflite") if p.name not in listed]
    if problems:
        raise AssetMismatch(f"{assets}: " + "; ".join(problems))
    return manifest


def _standard_metadata_problems(file_name: str, records: dict[str, bytes], manifest: dict) -> list[str]:
    """The TFLITE_METADATA record (what Android Studio's model binding reads) against the manifest."""
    from edge_age.formats import tflite_metadata

    record = records.get(tflite_metadata.RECORD_NAME)
    if record is None:
        return [f"{file_name}: no TFLITE_METADATA record (exported before edge-age wrote one: re-export it)"]
    found = tflite_metadata.read(record)
    expected = tflite_metadata.read(tflite_metadata.build(manifest))  # what an export with this manifest writes
    return [f"{file_name}: TFLITE_METADATA {key} is {found[key]}, the manifest implies {value}"
            for key, value in expected.items() if found[key] != value]


# ---------------------------------------------------------------- golden vectors


def _b64(array: np.ndarray) -> str:
    """Little-endian bytes of an array as base64 (how the golden vectors store pixels and tensors)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()).decode()


def golden_vectors(assets: Path, images: list[Path]) -> dict:
    """For each real image (its largest dlib face): its RGB bytes and eye points; for each image and model
    file: the input tensor the app must build, LiteRT's raw outputs for it, and the decoded age and P(female)."""
    if not images:
        raise ValueError("no images for the golden vectors")
    manifest = check_assets(assets)
    aligner = FaceAligner()
    runners = {entry["file"]: TFLiteRunner(Path(assets) / entry["file"]) for entry in manifest["files"]}
    faces, cases = [], []
    for image_path in images:
        image = read_rgb(image_path)
        face = largest(aligner.find(image))
        if face is None:
            raise ValueError(f"{image_path}: dlib finds no face; golden vectors need real faces")
        eye_left, eye_right = eye_centres(face.landmarks)
        rgb = np.asarray(image, np.uint8)
        faces.append({"image": Path(image_path).name, "width": rgb.shape[1], "height": rgb.shape[0],
                      "rgb_base64": _b64(rgb), "eye_left": eye_left.tolist(), "eye_right": eye_right.tolist()})
        float_input = phone_input(rgb, eye_left, eye_right, manifest["input"])
        for file_name, runner in runners.items():
            tensor = runner.quantize_input(float_input)
            raw = runner.run_raw(tensor)
            age, p_female = (float(runner.dequantize(d, v).reshape(-1)[0]) for d, v in zip(runner.outputs, raw))
            cases.append({
                "image": Path(image_path).name, "file": file_name,
                "input_dtype": np.dtype(tensor.dtype).name, "input_base64": _b64(tensor),
                "outputs": [{"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                             "quantization": {"scale": float(d["quantization"][0]), "zero_point": int(d["quantization"][1])},
                             "values": np.asarray(v, np.float64).reshape(-1).tolist()} for d, v in zip(runner.outputs, raw)],
                "age": age, "p_female": p_female,
            })
    return {
        "about": "Written by `edge-age android golden`: LiteRT (ai-edge-litert) run on the app's model files. The "
                 "Java core must rebuild each case's input from its face's RGB bytes and eye points, and its age "
                 "and p_female from the raw outputs.",
        "manifest_sha256": sha256_file(Path(assets) / MANIFEST),
        "files": {entry["file"]: entry["sha256"] for entry in manifest["files"]},
        "faces": faces,
        "cases": cases,
    }


def write_golden(assets: Path, out: Path, images: list[Path]) -> dict:
    golden = golden_vectors(assets, images)
    atomic_write_json(out, golden)
    return golden


def check_golden(assets: Path = DEFAULT_ASSETS, golden_path: Path = DEFAULT_GOLDEN) -> dict:
    """Raise AssetMismatch unless the golden vectors were made from exactly these assets and LiteRT still gives
    their recorded outputs for their recorded inputs."""
    try:
        golden = json.loads(Path(golden_path).read_text())
        golden["files"], golden["cases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise AssetMismatch(f"{golden_path} is not a golden-vectors file ({type(err).__name__}); regenerate: "
                            "edge-age android golden") from None
    manifest = check_assets(assets)
    current = {entry["file"]: entry["sha256"] for entry in manifest["files"]}
    if golden["files"] != current:
        raise AssetMismatch(f"{golden_path} was made from other model files ({golden['files']}) than the assets "
                            f"hold ({current}); regenerate: edge-age android golden")
    runners = {file_name: TFLiteRunner(Path(assets) / file_name) for file_name in current}
    for case in golden["cases"]:
        runner = runners.get(case.get("file"))
        if runner is None:  # a case naming a file the manifest does not list: never opened
            raise AssetMismatch(f"{golden_path}: a case names {case.get('file')!r}, which the assets do not list")
        shape = runner.input["shape"]
        tensor = np.frombuffer(base64.b64decode(case["input_base64"]), dtype=np.dtype(case["input_dtype"])).reshape(shape)
        for recorded, value in zip(case["outputs"], runner.run_raw(tensor)):
            drift = float(np.max(np.abs(np.asarray(value, np.float64).reshape(-1) - recorded["values"])))
            if drift > OUTPUT_TOLERANCE:
                raise AssetMismatch(f"{case['file']} on {case['image']}: output {recorded['name']} moved by {drift:.2g}")
    return golden


# ---------------------------------------------------------------- command line


def _precisions(text: str) -> list[str]:
    from edge_age.formats.tflite import PRECISIONS

    chosen = csv_list(text)
    unknown = [p for p in chosen if p not in PRECISIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown TFLite precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    install_parser = actions.add_parser("install", help="copy an export's TFLite files + manifest into the app, "
                                                        "check them, rewrite the golden vectors")
    install_parser.add_argument("export", type=Path, help="an export folder (with manifest.json)")
    install_parser.add_argument("--precisions", type=_precisions, default=list(DEFAULT_PRECISIONS),
                                help="TFLite precisions to ship (default fp16,int8; fp32, int8-dynamic also exist)")
    golden_parser = actions.add_parser("golden", help="rewrite the golden vectors from the installed files")
    golden_parser.add_argument("--images", type=Path, nargs="+", help="real face photos (default android_demo/golden-images)")
    actions.add_parser("check", help="assets, manifest, embedded metadata and golden vectors agree")
    for sub in (install_parser, golden_parser, actions.choices["check"]):
        sub.add_argument("--assets", type=Path, default=DEFAULT_ASSETS, help="the app's assets folder")
        sub.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="the golden vectors file")


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        manifest = install(args.export, args.assets, args.precisions, args.golden)
        for entry in manifest["files"]:
            print(f"installed {args.assets / entry['file']} ({entry['bytes'] / 1e6:.2f} MB, input {entry['input_tensor']['dtype']})")
        print(f"manifest: {args.assets / MANIFEST}\ngolden vectors: {args.golden}")
    elif args.action == "golden":
        golden = write_golden(args.assets, args.golden, args.images or sorted(DEFAULT_GOLDEN_IMAGES.glob("*.png")))
        print(f"{len(golden['cases'])} golden cases -> {args.golden}")
    else:
        check_golden(args.assets, args.golden)
        print(f"{args.assets}: model files, manifest, metadata and {args.golden.name} agree")
    return 0
