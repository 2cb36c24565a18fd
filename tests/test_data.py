import json
import shutil
import warnings

import numpy as np
import pytest

from edge_age.data import (CachedBatches, apply_split, decoded_cache, load_split, make_split, parse_utkface_name,
                           read_labels_csv, resolve_data_dir, resolve_run_data_dir, save_split, scan_utkface)
from edge_age.images import load_for_model
from tests.conftest import copy_real_faces


def test_parse_real_names(utkface_all):
    assert parse_utkface_name("100_1_0_20170110183726390.jpg.chip.jpg") == (100, 1, 0)
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg") is None  # missing field (real file)
    assert parse_utkface_name("24_0_1_20170116220224657 .jpg.chip.jpg") is None  # stray space (real file)
    assert parse_utkface_name("55_0_0_20170116232725357jpg.chip.jpg") is None  # missing dot (real file)


def test_scan_real_folder_skips_misnamed_with_count(utkface_all):
    assert len(utkface_all) + len(utkface_all.skipped) == 20_000
    assert len(utkface_all.skipped) == 5
    assert set(np.unique(utkface_all.genders)) == {0, 1}
    assert utkface_all.ages.min() >= 1 and utkface_all.ages_over(100) > 0


def test_scan_temp_copies_with_broken_names(utkface_all, tmp_path):
    names = copy_real_faces(utkface_all, tmp_path, 6)
    shutil.copy(tmp_path / names[0], tmp_path / "nolabel.jpg")
    shutil.copy(tmp_path / names[1], tmp_path / "30_2_0_20170101.jpg.chip.jpg")  # gender 2 does not exist
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\).*nolabel.jpg"):
        data = scan_utkface(tmp_path)
    assert sorted(data.files) == sorted(names) and len(data.skipped) == 2


def test_split_is_deterministic_disjoint_and_721(utkface_all):
    a, b = make_split(utkface_all, seed=3), make_split(utkface_all, seed=3)
    assert a == b
    parts = [set(a[n]) for n in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == len(utkface_all)
    assert abs(len(parts[0]) / len(utkface_all) - 0.7) < 0.001 and abs(len(parts[2]) / len(utkface_all) - 0.1) < 0.001
    assert make_split(utkface_all, seed=4)["test"] != a["test"]


def test_subset_5000_and_split_file_round_trip(utkface_all, tmp_path):
    split = make_split(utkface_all, seed=0, subset=5000)
    assert split["counts"] == {"train": 3500, "val": 1000, "test": 500}
    digest = save_split(split, tmp_path / "split.json")
    assert len(digest) == 64
    loaded = load_split(tmp_path / "split.json")
    test = apply_split(utkface_all, loaded, "test")
    assert len(test) == 500 and set(test.files) == set(split["test"])
    with pytest.raises(ValueError, match="subset of 30000 images"):
        make_split(utkface_all, subset=30000)


@pytest.mark.parametrize("change,message", [
    (lambda s: s["val"].append(s["train"][0]), "are in both 'train' and 'val'"),
    (lambda s: s["test"].append(s["val"][0]), "are in both 'val' and 'test'"),
    (lambda s: s["train"].append(s["train"][0]), "'train' list names a file more than once"),
    (lambda s: s.update(val=[]), "must not be empty"),
    (lambda s: s.update(test="a.jpg"), "needs lists 'train', 'val' and 'test'"),
    (lambda s: s["test"].append(7), "'test' list must hold file names"),
])
def test_a_split_file_that_would_leak_or_cannot_be_used_is_refused(change, message, utkface_all, tmp_path):
    split = make_split(utkface_all, seed=0, subset=300)
    change(split)
    (tmp_path / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError, match=message):
        load_split(tmp_path / "split.json")


def test_csv_dataset(utkface_all, tmp_path):
    names = copy_real_faces(utkface_all, tmp_path / "imgs", 5)
    rows = ["file,age,gender"] + [f"{n},{parse_utkface_name(n)[0]},{parse_utkface_name(n)[1]}" for n in names]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = read_labels_csv(tmp_path / "labels.csv", root=tmp_path / "imgs")
    assert data.files == names and list(data.ages) == [parse_utkface_name(n)[0] for n in names]
    (tmp_path / "bad.csv").write_text("name,age\nx.jpg,3\n")
    with pytest.raises(ValueError, match="file,age,gender"):
        read_labels_csv(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("file,age,gender\nx.jpg,3,7\n")
    with pytest.raises(ValueError, match="bad2.csv: no usable rows .*line 2: gender '7' is not 0"), \
            pytest.warns(UserWarning, match="skipped 1 row"):
        read_labels_csv(tmp_path / "bad2.csv")


def test_data_dir_resolution(tmp_path, monkeypatch):
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="UTKFace.*--data DIR"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.setenv("EDGE_AGE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"\$EDGE_AGE_DATA"):
        resolve_data_dir(None)


def test_cache_round_trip_equals_direct_decode(utkface_all, tmp_path):
    copy_real_faces(utkface_all, tmp_path, 12, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = scan_utkface(tmp_path)
    first = decoded_cache(data, 64, workers=2, verbose=False)
    again = decoded_cache(data, 64, verbose=False)  # read back from the map
    for i, path in enumerate(data.paths):
        direct = load_for_model(path, 64)
        np.testing.assert_array_equal(first.pixels[i], direct)
        np.testing.assert_array_equal(again.pixels[i], direct)
    images, ages, genders = CachedBatches(again)[[3, 1]]
    assert images.shape == (2, 64, 64, 3) and ages.tolist() == [data.ages[1], data.ages[3]]


def test_cache_drops_corrupt_images_with_a_warning(utkface_all, tmp_path):
    names = copy_real_faces(utkface_all, tmp_path, 4, seed=6)
    raw = (tmp_path / names[0]).read_bytes()
    (tmp_path / names[0]).write_bytes(raw[: len(raw) // 3])  # truncated JPEG
    (tmp_path / names[1]).write_text("this is a text file named .jpg")
    data = scan_utkface(tmp_path)
    with pytest.warns(UserWarning) as caught:
        decoded = decoded_cache(data, 32, workers=1, verbose=False)
    messages = [str(w.message) for w in caught]
    assert sum("not a readable image" in m for m in messages) == 2  # each named, with why
    assert any("dropped 2 unreadable" in m for m in messages)
    assert len(decoded) == 2 and set(decoded.data.files) == set(names[2:])


def test_a_run_trained_elsewhere_falls_back_to_local_data(utkface_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGE_AGE_DATA", raising=False)
    # A default location that exists wherever this clone sits: ../shared/data/utkface/images from the working folder.
    (tmp_path / "shared" / "data" / "utkface" / "images").mkdir(parents=True)
    (tmp_path / "clone").mkdir()
    monkeypatch.chdir(tmp_path / "clone")
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    assert resolve_run_data_dir(None, str(recorded)) == recorded.resolve()  # recorded folder exists here
    assert resolve_run_data_dir(None, "/root/utk-on-another-machine") == resolve_data_dir(None)
    assert resolve_run_data_dir(str(utkface_dir), str(recorded)) == utkface_dir.resolve()  # --data wins
    monkeypatch.setenv("EDGE_AGE_DATA", str(utkface_dir))
    assert resolve_run_data_dir(None, str(recorded)) == utkface_dir.resolve()  # and so does $EDGE_AGE_DATA
