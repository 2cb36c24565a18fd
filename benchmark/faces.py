"""``edge-age face-benchmark``: how well and how fast dlib finds and re-aligns real UTKFace chips here.

On a seeded sample of chips it reports the detection rate, the time per image for detection + landmarks +
alignment (median and p90; the image already decoded), the overlap (IoU) of the re-aligned crop with the
original chip, and how far the landmarks of the re-aligned chip fall from the chip template. Writes Markdown
and JSON under results/faces/.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edge_age.machine import describe_machine, machine_line, machine_slug
from edge_age.data import resolve_data_dir, scan_utkface
from edge_age.faces import CHIP_TEMPLATE, DETECTORS, FaceAligner, chip_overlap, largest
from edge_age.images import read_rgb
from edge_age.io import atomic_write_json, atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="UTKFace folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--count", type=int, default=500, help="chips in the seeded sample")
    parser.add_argument("--detector", choices=DETECTORS, default="hog")
    parser.add_argument("--out", help="output stem (default results/faces/MACHINE-DETECTOR)")


def measure(aligner: FaceAligner, paths: list[Path]) -> dict:
    seconds, overlaps, landmark_errors, pixel_differences, found = [], [], [], [], 0
    for path in paths:
        chip = read_rgb(path)
        started = time.perf_counter()
        face = largest(aligner.find(chip))
        seconds.append(time.perf_counter() - started)
        if face is None:
            continue
        found += 1
        overlaps.append(chip_overlap(face.chip_to_image, chip.size))
        pixel_differences.append(np.abs(np.asarray(face.chip, np.float32) - np.asarray(chip, np.float32)).mean())
        again = largest(aligner.find(face.chip))
        if again is not None:
            landmark_errors.append(np.linalg.norm(again.landmarks - CHIP_TEMPLATE, axis=1).mean())
    ms = np.array(seconds) * 1000
    return {"n": len(paths), "found": found, "detection_rate": found / len(paths),
            "ms_median": float(np.median(ms)), "ms_p90": float(np.percentile(ms, 90)),
            "overlap_median": float(np.median(overlaps)), "overlap_p5": float(np.percentile(overlaps, 5)),
            "overlap_min": float(np.min(overlaps)),
            "realigned_landmark_error_px_median": float(np.median(landmark_errors)),
            "pixel_difference_median": float(np.median(pixel_differences))}


def run(args: argparse.Namespace) -> int:
    if args.count <= 0:
        raise ValueError(f"--count must be positive, got {args.count}")
    labelled = scan_utkface(resolve_data_dir(args.data))
    paths = labelled.sample(args.count).paths
    result = measure(FaceAligner(args.detector), paths)
    machine = describe_machine()
    stem = Path(args.out) if args.out else Path("results/faces") / f"{machine_slug(machine)}-{args.detector}"
    atomic_write_json(stem.with_suffix(".json"), {"machine": machine, "detector": args.detector, **result})
    text = "\n".join([
        f"# dlib face finding and alignment on {result['n']} real UTKFace chips ({args.detector} detector)", "",
        f"Machine: {machine_line(machine)}; {machine['date']}. Sample: seed 0 over {labelled.root}.",
        f"Command: `edge-age face-benchmark --count {args.count} --detector {args.detector}`", "",
        "| measure | value |", "| --- | ---: |",
        f"| faces found | {result['found']} of {result['n']} ({result['detection_rate']:.1%}) |",
        f"| time per image, detection + landmarks + alignment (median / p90) | {result['ms_median']:.1f} / {result['ms_p90']:.1f} ms |",
        f"| overlap (IoU) of the re-aligned crop with the original chip (median / p5 / min) | "
        f"{result['overlap_median']:.3f} / {result['overlap_p5']:.3f} / {result['overlap_min']:.3f} |",
        f"| landmarks of the re-aligned chip from the template (median mean distance) | "
        f"{result['realigned_landmark_error_px_median']:.1f} px of 200 |",
        f"| mean absolute pixel difference, re-aligned chip vs original (median) | {result['pixel_difference_median']:.1f} of 255 |",
        ""])
    atomic_write_text(stem.with_suffix(".md"), text)
    print(text)
    print(f"written: {stem.with_suffix('.md')}, {stem.with_suffix('.json')}")
    return 0
