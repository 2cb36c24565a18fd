"""train-ablation: each row is the phone recipe with one change, runs are kept and resumed, the table is honest."""
import json

from edge_age.cli import main
from edge_age.train.ablation import CHANGES, _verdicts, ablation_recipe
from edge_age.train.recipes import resolve_recipe

BUDGET = {"subset": 8000, "img_size": 96, "epochs": 6, "ema_decay": 0.99}


def test_each_row_changes_only_what_it_says():
    phone = resolve_recipe("phone", None)
    base = ablation_recipe(next(c for c in CHANGES if c.name == "baseline"), BUDGET)
    assert base["img_size"] == 96 and base["subset"] == 8000 and base["phases"][0]["epochs"] == 6
    assert base["loss"] == phone["loss"] and base["augmentation"] == phone["augmentation"]
    for change in CHANGES:
        recipe = ablation_recipe(change, BUDGET)
        differs = {key for key in base if key not in ("overrides", "phases") and recipe[key] != base[key]}
        phase, base_phase = recipe["phases"][0], base["phases"][0]
        phase_differs = {key for key in {*phase, *base_phase} if phase.get(key) != base_phase.get(key)}
        expected = {
            "baseline": (set(), set()), "baseline-seed1": (set(), set()),
            "no-ldl": ({"loss"}, set()),
            "adam-step": (set(), {"optimizer", "weight_decay", "scheduler"}),
            "slow-backbone": (set(), {"lr_mult"}),
            "unfrozen": ({"model_options"}, set()),
            "no-ema": ({"ema_decay"}, set()),
            "coursework-augment": ({"augmentation"}, set()),
            "112px": ({"img_size"}, set()), "128px": ({"img_size"}, set()), "160px": ({"img_size"}, set()),
        }[change.name]
        assert (differs, phase_differs) == expected, change.name
    adam = ablation_recipe(next(c for c in CHANGES if c.name == "adam-step"), BUDGET)
    assert adam["phases"][0]["scheduler"] == {"type": "step", "every": 3, "gamma": 0.2}
    assert ablation_recipe(next(c for c in CHANGES if c.name == "no-ema"), BUDGET)["ema_decay"] is None


def test_a_difference_inside_the_seed_spread_decides_nothing():
    rows = [{"change": "baseline", "kind": "reference", "val_mae": 5.0},
            {"change": "baseline-seed1", "kind": "reference", "val_mae": 5.2},
            {"change": "no-ema", "kind": "piece", "val_mae": 5.1},
            {"change": "no-ldl", "kind": "piece", "val_mae": 5.6},
            {"change": "same-lr", "kind": "piece", "val_mae": 4.5},
            {"change": "128px", "kind": "size", "val_mae": 4.6}]
    _verdicts(rows)
    verdicts = {r["change"]: r.get("verdict") for r in rows}
    assert verdicts == {"baseline": None, "baseline-seed1": None, "no-ema": "within the seed spread",
                        "no-ldl": "the piece helps: kept", "same-lr": "the piece hurts here",
                        "128px": "better than the baseline size"}


def test_runs_on_real_faces_are_kept_resumed_and_guarded(utkface_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    flags = ["--data", str(utkface_dir), "--out", str(out), "--subset", "200", "--img-size", "32", "--epochs", "1"]
    assert main(["train-ablation", "--changes", "baseline,no-ema", *flags]) == 0
    table = (out / "ablation.md").read_text()
    assert "| baseline |" in table and "| no-ema |" in table and (out / "ablation.png").stat().st_size > 0
    rows = {r["change"]: r for r in json.loads((out / "ablation.json").read_text())["rows"]}
    assert rows["no-ema"]["finished"] and rows["no-ema"]["epochs_run"] == 1
    assert rows["no-ema"]["delta_mae"] == rows["no-ema"]["val_mae"] - rows["baseline"]["val_mae"]
    stored = json.loads((out / "no-ema" / "config.json").read_text())["recipe"]
    assert stored["ema_decay"] is None and stored["subset"] == 200

    before = (out / "baseline" / "best.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["train-ablation", "--changes", "baseline", *flags]) == 0  # finished: kept, not trained again
    assert "finished earlier, kept" in capsys.readouterr().out
    assert (out / "baseline" / "best.pt").stat().st_mtime_ns == before

    (out / "no-ema" / "test_metrics.json").unlink()  # as if killed after its last epoch: it resumes from last.pt
    assert main(["train-ablation", "--changes", "no-ema", *flags]) == 0
    assert "no-ema: resuming" in capsys.readouterr().out and (out / "no-ema" / "test_metrics.json").is_file()

    other_budget = [*flags[:-1], "2"]
    assert main(["train-ablation", "--changes", "baseline", *other_budget]) == 2
    assert "other settings" in capsys.readouterr().err
    assert (out / "baseline" / "best.pt").stat().st_mtime_ns == before
