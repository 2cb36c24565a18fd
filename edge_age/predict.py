"""``edge-age predict``: age and gender of every face in photos, with any model file (checkpoint, .onnx, .tflite).

    edge-age predict IMAGE_OR_DIR --model FILE [--json] [--csv FILE] [--save-annotated DIR] [--chip]

Each image is read upright (EXIF orientation), its faces found and aligned by dlib (edge_age.faces), each
face cropped like a UTKFace chip and run through the model with the preprocessing the model file describes.
A folder never stops at a bad file: each file gets a status (ok, no face, unreadable: why).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edge_age.cli_args import output_file, output_folder, positive_int
from edge_age.faces import DETECTORS, Face, FaceAligner, whole_image_face
from edge_age.images import ImageReadError, read_rgb, resize_square
from edge_age.runtimes import ModelFile, open_model_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CSV_COLUMNS = ["file", "status", "face", "left", "top", "right", "bottom", "age", "gender", "p_female"]


@dataclass
class ImageResult:
    """One image's outcome: a status and, per face, where it is and what the model says."""

    file: str
    status: str = "ok"
    faces: list[dict] = field(default_factory=list)
    image: Image.Image | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"file": self.file, "status": self.status, "faces": self.faces}


def list_images(target: str | Path) -> list[Path]:
    """A file, or every image file under a folder (sorted; other files such as CSVs are left alone)."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such file or folder")
    files = sorted(p for p in target.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{target}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def find_faces(path: Path, aligner: FaceAligner | None,
               timings: dict | None = None) -> tuple[Image.Image | None, list[Face], str]:
    """Read one image and find its faces (the whole image when aligner is None): (image, faces, status), the
    status being ok, no face, or unreadable with the reason. Shared by predict and evaluate. ``timings``
    collects the seconds of each stage (decode, detect and align)."""
    clock = _StageClock(timings)
    try:
        image = read_rgb(path)
    except ImageReadError as err:
        return None, [], f"unreadable: {str(err).removeprefix(f'{path}: ')}"
    clock.lap("decode")
    faces = [whole_image_face(image)] if aligner is None else aligner.find(image)
    clock.lap("detect + align")
    return image, faces, "ok" if faces else "no face"


class _StageClock:
    """Adds the seconds since the last lap to ``timings[stage]`` (a list per stage); does nothing without timings."""

    def __init__(self, timings: dict | None):
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings.setdefault(stage, []).append(now - self.last)
        self.last = now


def analyse_image(path: Path, model: ModelFile, aligner: FaceAligner | None, keep_image: bool = False,
                  timings: dict | None = None) -> ImageResult:
    """Read one image, find its faces (or take it whole when aligner is None) and predict each face."""
    image, faces, status = find_faces(path, aligner, timings)
    result = ImageResult(str(path), status)
    if faces:
        clock = _StageClock(timings)
        pixels = np.stack([resize_square(face.chip, model.size) for face in faces])
        clock.lap("crop + resize")
        ages, female = model.predict(pixels)
        clock.lap("model")
        for face, age, p_female in zip(faces, ages, female):
            result.faces.append({**face.to_dict(), "age": round(float(age), 2),
                                 "gender": "female" if p_female > 0.5 else "male", "p_female": round(float(p_female), 4)})
    if keep_image:
        result.image = image
    return result


def draw(result: ImageResult) -> Image.Image:
    """The photo with a box, landmarks and 'age, gender (confidence)' per face."""
    image = result.image.copy()
    canvas = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 400))
    for face in result.faces:
        left, top, right, bottom = face["box"]
        colour = (230, 60, 140) if face["gender"] == "female" else (40, 140, 230)
        canvas.rectangle((left, top, right, bottom), outline=colour, width=line)
        for x, y in face["landmarks"]:
            canvas.ellipse((x - line, y - line, x + line, y + line), fill=(255, 255, 0))
        confidence = max(face["p_female"], 1 - face["p_female"])
        label = f"{face['age']:.0f}, {face['gender']} ({confidence:.0%})"
        text_box = canvas.textbbox((left, top), label)
        label_top = max(0, top - (text_box[3] - text_box[1]) - 2 * line)
        canvas.rectangle((left, label_top, left + text_box[2] - text_box[0] + 2 * line, top), fill=colour)
        canvas.text((left + line, label_top + line // 2), label, fill=(255, 255, 255))
    return image


def csv_rows(result: ImageResult) -> list[dict]:
    """One row per face; a file without faces gets one row with its status and empty face columns."""
    if not result.faces:
        return [{"file": result.file, "status": result.status}]
    return [{"file": result.file, "status": result.status, "face": number,
             **dict(zip(("left", "top", "right", "bottom"), face["box"])),
             "age": face["age"], "gender": face["gender"], "p_female": face["p_female"]}
            for number, face in enumerate(result.faces)]


def add_face_arguments(parser: argparse.ArgumentParser) -> None:
    """Face-finding flags shared by predict and evaluate."""
    parser.add_argument("--detector", choices=DETECTORS, default="hog",
                        help="dlib's HOG frontal detector (fast) or its CNN (MMOD) detector (finds more, slow on CPU)")
    parser.add_argument("--landmarks", type=int, choices=(5, 68), default=5, help="dlib landmark model used to align")
    parser.add_argument("--threads", type=positive_int, default=None, help="runtime threads (default: the runtime's own)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="IMAGE_OR_DIR", help="an image file or a folder of images")
    parser.add_argument("--model", required=True, help="a checkpoint (.pt), .onnx or .tflite file from edge-age")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--csv", metavar="FILE", type=output_file,
                        help="also write one row per face to this CSV, row by row as images are done")
    parser.add_argument("--save-annotated", metavar="DIR", type=output_folder,
                        help="write each image with boxes and labels drawn here (NAME.annotated.jpg)")
    parser.add_argument("--timings", action="store_true",
                        help="print the median time of each stage per image (decode, detect + align, crop + resize, "
                             "model) beside the model-only time")
    parser.add_argument("--chip", action="store_true",
                        help="the images are already aligned face crops (like UTKFace chips): skip face detection")
    add_face_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from edge_age.io import atomic_write_bytes

    files = list_images(args.target)
    model = open_model_file(args.model, args.threads)
    aligner = None if args.chip else FaceAligner(args.detector, args.landmarks)
    annotated_dir = args.save_annotated
    annotated = _annotated_names(files, args.target) if annotated_dir is not None else {}
    clashes = [annotated_dir / name for name in annotated.values() if (annotated_dir / name).exists()]
    if clashes:
        raise FileExistsError(f"{clashes[0]} already exists ({len(clashes)} of the annotated images would replace "
                              "files there); choose an empty --save-annotated folder")
    results = []
    timings = {} if args.timings else None
    csv_handle = open(args.csv, "w", newline="", encoding="utf-8") if args.csv else None
    try:
        writer = csv.DictWriter(csv_handle, fieldnames=CSV_COLUMNS) if csv_handle else None
        if writer:
            writer.writeheader()
        for path in tqdm(files, desc="predict", unit="image", file=sys.stderr, disable=len(files) == 1 or None):
            result = analyse_image(path, model, aligner, keep_image=annotated_dir is not None, timings=timings)
            if annotated_dir is not None and result.image is not None:
                buffer = io.BytesIO()
                draw(result).save(buffer, "JPEG", quality=92)
                atomic_write_bytes(annotated_dir / annotated[path], buffer.getvalue())
                result.image = None
            results.append(result)
            if writer:  # row by row: an interruption keeps every image done so far
                writer.writerows(csv_rows(result))
                csv_handle.flush()
    finally:
        if csv_handle:
            csv_handle.close()
    if args.json:
        print(json.dumps({"model": str(args.model), "results": [r.to_dict() for r in results]}, indent=2))
    else:
        _print_table(results)
    if timings:
        _print_timings(timings, model)
    faces = sum(len(r.faces) for r in results)
    problems = sum(r.status != "ok" for r in results)
    print(f"{len(results)} image(s), {faces} face(s), {problems} without a prediction", file=sys.stderr)
    return 0


def _print_timings(timings: dict, model: ModelFile) -> None:
    """Median ms per image of each stage, the whole of it, and the model's share (model-only time)."""
    medians = {stage: 1000 * float(np.median(seconds)) for stage, seconds in timings.items()}
    whole = sum(medians.values())
    print(f"end to end, median per image ({model.runner.kind}): " + ", ".join(
        f"{stage} {ms:.1f} ms" for stage, ms in medians.items()) + f"; total {whole:.1f} ms, of which the model "
        f"{medians.get('model', 0.0):.1f} ms ({medians.get('model', 0.0) / whole:.0%})" if whole else "", file=sys.stderr)


def _annotated_names(files: list[Path], target: str | Path) -> dict[Path, str]:
    """NAME.annotated.jpg per image; images of the same name in different subfolders keep their subfolder in it."""
    root = Path(target) if Path(target).is_dir() else Path(target).parent
    names = {}
    for path in files:
        relative = path.relative_to(root).with_suffix("")
        names[path] = "__".join(relative.parts) + ".annotated.jpg"
    return names


def _print_table(results: list[ImageResult]) -> None:
    print(f"{'file':40} {'status':22} {'face':>4} {'box':>22} {'age':>6} {'gender':>7} {'P(female)':>9}")
    for result in results:
        name = Path(result.file).name[-40:]
        if not result.faces:
            print(f"{name:40} {result.status[:60]}")
        for number, face in enumerate(result.faces):
            box = ",".join(str(v) for v in face["box"])
            print(f"{name:40} {result.status:22} {number:>4} {box:>22} {face['age']:6.1f} {face['gender']:>7} "
                  f"{face['p_female']:9.3f}")
