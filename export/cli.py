"""``edge-age export``: a run's best.pt (or a bare checkpoint) -> ONNX / TFLite / Core ML files + manifest.json."""
from __future__ import annotations

import argparse
from pathlib import Path

from edge_age import formats
from edge_age.cli_args import csv_list, positive_int
from edge_age.export.exporter import DEFAULT_PARITY_IMAGES, export_model, resolve_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a finished training run folder (uses its best.pt and split.json)")
    source.add_argument("--checkpoint", help="a bare edge-age checkpoint file")
    table = formats.formats()
    parser.add_argument("--formats", type=csv_list, default=list(table), help=",".join(table))
    parser.add_argument("--precisions", type=csv_list, default=formats.all_precisions(),
                        help=",".join(formats.all_precisions()) + " (int8 gives every int8 variant a format offers)")
    parser.add_argument("--calib-images", type=positive_int, default=256, help="real training images for int8 calibration")
    parser.add_argument("--parity-images", type=positive_int, default=DEFAULT_PARITY_IMAGES,
                        help="real test images for the parity check (topped up from validation if the test split is smaller)")
    parser.add_argument("--data", help="image folder (default: the run's data folder)")
    parser.add_argument("--out", help="export folder (default exports/RUN_NAME); an earlier export of the same "
                        "checkpoint there keeps the variants this run does not redo")
    parser.add_argument("--clean", action="store_true",
                        help="first remove the files an earlier export in --out lists in its manifest (nothing else)")
    parser.add_argument("--int8-outputs", action="store_true",
                        help="give the full-integer TFLite file int8 outputs too (age in 0.5 y steps, P(female) in "
                             "1/255 steps), for NPUs that take only integer tensors; default: float outputs")
    parser.add_argument("--android", type=Path, metavar="ASSETS_DIR",
                        help="then install the TFLite fp16 and int8 files into an Android app's assets, as "
                             "`edge-age android install` does (e.g. android_demo/app/src/main/assets)")


def run(args: argparse.Namespace) -> int:
    checkpoint, run_dir = resolve_checkpoint(args.run, args.checkpoint)
    out_dir = Path(args.out or Path("exports") / (run_dir.name if run_dir else checkpoint.stem))
    manifest = export_model(checkpoint, out_dir, args.formats, args.precisions, run_dir=run_dir, data=args.data,
                            calib_images=args.calib_images, parity_images=args.parity_images,
                            int8_outputs=args.int8_outputs, clean=args.clean)
    print(f"\n{'file':<34} {'MB':>7} {'status':<13} {'age max diff':>12} {'MAE change':>10} {'gender acc chg':>14}")
    for entry in manifest.files:
        p = entry.parity
        mb = f"{entry.bytes / 1e6:.2f}" if entry.bytes is not None else "-"
        print(f"{entry.file:<34} {mb:>7} {entry.status:<13} {p.get('age_max_diff_years', float('nan')):>12.4f} "
              f"{p.get('mae_change_years', float('nan')):>+10.3f} {p.get('gender_accuracy_change_points', float('nan')):>+14.2f}")
    print(f"manifest: {out_dir / 'manifest.json'}")
    if args.android:
        from edge_age.export import android

        demo_assets = args.android.resolve() == android.DEFAULT_ASSETS.resolve()
        installed = android.install(out_dir, args.android, golden=android.DEFAULT_GOLDEN if demo_assets else None)
        print(f"android: {', '.join(e['file'] for e in installed['files'])} -> {args.android}"
              + (f" (golden vectors rewritten: {android.DEFAULT_GOLDEN})" if demo_assets else ""))
    return 0 if all(e.usable for e in manifest.files) else 1
