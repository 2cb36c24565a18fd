"""Learning curves drawn like the coursework's Figures 2 and 3: loss, gender accuracy and age MAE, train vs validation."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edge_age.io import atomic_write_bytes  # noqa: E402

PANELS = [("loss", "train_loss", "val_loss"), ("gender accuracy", "train_gender_acc", "val_gender_acc"),
          ("age MAE (years)", "train_age_mae", "val_age_mae")]


def plot_learning_curves(metrics_csv: str | Path, png_path: str | Path) -> None:
    with open(metrics_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, train_key, val_key) in zip(axes, PANELS):
        ax.plot(epochs, [float(r[train_key]) for r in rows], "o-", label="train")
        ax.plot(epochs, [float(r[val_key]) for r in rows], "s-", label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(Path(metrics_csv).parent.name)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(png_path, buffer.getvalue())
