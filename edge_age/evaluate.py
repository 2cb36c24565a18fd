"""``edge-age evaluate``: any model file on any labelled set of faces.

    edge-age evaluate --model FILE --data DIR [--labels CSV] [--split SPLIT.json [--part val]] [--align] [--limit N]
                      [--against FILE] [--out FILE]

The set is a UTKFace-named folder or a folder plus a ``file,age,gender`` CSV (gender 0 male, 1 female), or one part
of a run's ``split.json`` within it (validation by default: choose between runs there, not on the test faces).
Without ``--align`` each image is taken as an aligned face chip; with it each goes through dlib first (the
largest face counts). Images without a usable face (unreadable, or no face found) stay in the denominator
of the found rate; the accuracy figures are over the faces found, and both are reported. ``--against`` scores a
second model on the same images and adds the first minus the second on the faces both found, with 95% paired
intervals: whether a new model beats the one you ship on your own faces, or only seems to.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_age.cli_args import output_file, positive_int
from edge_age.data import SPLIT_NAMES, apply_split, load_labelled, load_split
from edge_age.faces import FaceAligner, largest
from edge_age.images import resize_square
from edge_age.io import atomic_write_json
from edge_age.metrics import decided, difference_text, paired_on_shared_faces, summarize, with_interval
from edge_age.predict import add_face_arguments, find_faces
from edge_age.runtimes import open_model_file

BATCH = 64


def evaluate(model_path: str | Path, data_dir: str | Path, labels_csv: str | Path | None = None, align: bool = False,
             limit: int | None = None, detector: str = "hog", landmarks: int = 5, threads: int | None = None,
             progress: bool = True, records_out: Path | None = None, split: str | Path | None = None,
             part: str = "val") -> dict:
    """Predict every labelled image and summarise: N, found rate, age MAE, CS(0..10), gender accuracy, per image.
    ``split``/``part``: only that part of a split file's images. ``records_out``: each image's record is appended
    there as a JSON line as soon as it is predicted."""
    from tqdm import tqdm

    labelled = load_labelled(data_dir, labels_csv)
    if split is not None:
        labelled = apply_split(labelled, load_split(split), part)
    if limit is not None:
        labelled = labelled.sample(limit)
    model = open_model_file(model_path, threads)
    aligner = FaceAligner(detector, landmarks) if align else None
    records, pending, waiting = [], [], []  # pending: (record, chip pixels) for the next batch; waiting: unwritten
    lines = open(records_out, "w", encoding="utf-8") if records_out else None

    def flush():
        if pending:
            ages, female = model.predict(np.stack([pixels for _, pixels in pending]))
            for (record, _), age, p_female in zip(pending, ages, female):
                record.update(age=float(age), p_female=float(p_female))
            pending.clear()
        if lines:
            lines.writelines(json.dumps(record) + "\n" for record in waiting)
            lines.flush()
        waiting.clear()

    for path, true_age, true_gender in tqdm(zip(labelled.paths, labelled.ages, labelled.genders), total=len(labelled),
                                            desc="evaluate", unit="image", file=sys.stderr, disable=not progress or None):
        record = {"file": str(path.relative_to(labelled.root)), "true_age": int(true_age), "true_gender": int(true_gender)}
        records.append(record)
        waiting.append(record)
        _, faces, record["status"] = find_faces(path, aligner)
        face = largest(faces)
        if face is None:
            continue
        if aligner is not None:
            record["box"] = list(face.box)
        pending.append((record, resize_square(face.chip, model.size)))
        if len(pending) == BATCH:
            flush()
    flush()
    if lines:
        lines.close()
    found = [r for r in records if r["status"] == "ok"]
    summary = {"model": str(model_path), "model_name": model.name, "runtime": model.runner.kind,
               "data": str(labelled.root), "labels": str(labels_csv) if labels_csv else "UTKFace file names",
               "split": {"file": str(split), "part": part} if split is not None else None,
               "align": align, "detector": detector if align else None,
               "n": len(records), "found": len(found), "found_rate": len(found) / len(records) if records else 0.0,
               "no_face": sum(r["status"] == "no face" for r in records),
               "unreadable": sum(r["status"].startswith("unreadable") for r in records),
               "skipped_misnamed": len(labelled.skipped)}
    if found:
        metrics = summarize([r["age"] for r in found], [r["true_age"] for r in found],
                            [r["p_female"] for r in found], [r["true_gender"] for r in found], intervals=True)
        summary.update(age_mae=metrics["age_mae"], cs=metrics["cs"], cs5=metrics["cs5"],
                       gender_accuracy=metrics["gender_accuracy"], ci95=metrics["ci95"])
    summary["images"] = records
    return summary


def face_answers(summary: dict) -> dict:
    """An evaluation's answers on the faces it found, in the form ``metrics.paired_on_shared_faces`` takes."""
    found = [r for r in summary["images"] if r["status"] == "ok"]
    return {"faces": [r["file"] for r in found], "age": [r["age"] for r in found],
            "female_prob": [r["p_female"] for r in found], "true_age": [r["true_age"] for r in found],
            "true_gender": [r["true_gender"] for r in found]}


def compare(summary: dict, other: dict) -> dict:
    """The second model's figures, and the first model's minus the second's on the faces both found, each with its
    95% paired interval ("paired"; None when no face was found by both)."""
    figures = {k: other[k] for k in ("model", "model_name", "runtime", "found", "age_mae", "cs5", "gender_accuracy",
                                     "ci95") if k in other}
    return {**figures, "paired": paired_on_shared_faces(face_answers(summary), face_answers(other))
            if summary["found"] and other["found"] else None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a checkpoint (.pt), .onnx or .tflite file from edge-age")
    parser.add_argument("--data", required=True, help="folder of images (UTKFace-named, or listed in --labels)")
    parser.add_argument("--labels", metavar="CSV", help="file,age,gender CSV (gender 0 male, 1 female), files relative to --data")
    parser.add_argument("--split", metavar="SPLIT.json", help="only the images of one part of a run's split file "
                        "(e.g. runs/NAME/split.json), found in --data")
    parser.add_argument("--part", choices=SPLIT_NAMES, help="which part of --split (default: val, "
                        "where runs are compared; test is for the final figures)")
    parser.add_argument("--align", action="store_true", help="find and align each face with dlib first (raw photos)")
    parser.add_argument("--limit", type=positive_int, help="evaluate a seeded random sample of this many images")
    parser.add_argument("--against", metavar="FILE", help="a second model file scored on the same images: adds the "
                        "first minus the second on the faces both found, with 95%% paired intervals")
    parser.add_argument("--out", type=output_file, help="JSON file for the summary and per-image results (default: "
                        "evaluation-MODEL.json); while it runs, each image's result goes to OUT.partial.jsonl")
    add_face_arguments(parser)


def run(args: argparse.Namespace) -> int:
    out = args.out or output_file(f"evaluation-{Path(args.model).stem}.json")
    partial = out.with_name(out.name + ".partial.jsonl")
    if args.part and not args.split:
        raise ValueError(f"--part {args.part} picks a part of a split file: pass --split RUN/split.json too")
    part = args.part or "val"
    on = dict(labels_csv=args.labels, align=args.align, limit=args.limit, detector=args.detector,
              landmarks=args.landmarks, threads=args.threads, split=args.split, part=part)
    summary = evaluate(args.model, args.data, records_out=partial, **on)
    if args.against:
        other = evaluate(args.against, args.data, **on)
        summary["against"] = compare(summary, other)
    atomic_write_json(out, summary)
    partial.unlink()  # written by this run; the summary now holds every record
    within = f" ({part} part of {args.split})" if args.split else ""
    print(f"{summary['model_name']} ({summary['runtime']}) on {summary['n']} image(s) of {summary['data']}{within}")
    print(f"  faces used: {summary['found']} ({summary['found_rate']:.1%}); no face: {summary['no_face']}; "
          f"unreadable: {summary['unreadable']}")
    if summary["found"]:
        cs = " ".join(f"{e}:{s:.3f}" for e, s in summary["cs"].items())
        print(f"  age MAE {with_interval(summary, 'age_mae', '.3f')} y | "
              f"CS(5) {with_interval(summary, 'cs5', '.3f')} | "
              f"gender accuracy {with_interval(summary, 'gender_accuracy', '.3f')} (95% intervals)\n  CS(0..10) {cs}")
    against = summary.get("against")
    if against:
        print(f"against {against['model']} ({against['model_name']}, {against['runtime']}): faces used {against['found']}"
              + (f"; age MAE {with_interval(against, 'age_mae', '.3f')} y | CS(5) {with_interval(against, 'cs5', '.3f')} | "
                 f"gender accuracy {with_interval(against, 'gender_accuracy', '.3f')}" if against["found"] else ""))
        difference = against["paired"]
        print("  first minus second " + (
            f"on the {difference['n']} faces both found: " + ", ".join(
                f"{label} {difference_text(difference, metric)}" + ("" if decided(difference[metric]) else " (holds 0)")
                for metric, label in (("age_mae", "age MAE"), ("cs5", "CS(5)"), ("gender_accuracy", "gender")))
            if difference else "not measured: no face was found by both"))
    print(f"  written: {out}")
    return 0
