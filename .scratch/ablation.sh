#!/usr/bin/env bash
# Issue 16 ablation at a reduced CPU budget: the phone recipe on the coursework's 5,000-image subset, 96 px, 6 epochs.
set -u
cd "$(dirname "$0")/.."
common="--recipe phone --subset 5000 --img-size 96 --epochs 6 --ema-decay 0.99"
run() { name=$1; shift; [ -f runs/ablation/$name/test_metrics.json ] && return; nice -n 10 .venv/bin/edge-age train $common --out runs/ablation/$name "$@" > runs/ablation/$name.log 2>&1 || echo "$name failed" >> runs/ablation/failed.txt; }
mkdir -p runs/ablation
run baseline
run l1-instead-of-ldl --loss age_l1=1,gender_bce=1
run no-ema --ema-decay 0
run backbone-lr-x1 --lr-mult backbone=1
run coursework-augmentation --augment coursework
run size-128 --img-size 128
run all-layers-trainable --model-options frozen_blocks=0
echo done > runs/ablation/done.txt
