"""dlib face detection and alignment on real UTKFace chips and photos composed from them."""
import numpy as np
import pytest
from PIL import Image

from edge_age.faces import CHIP_SIZE, CHIP_TEMPLATE, FaceAligner, chip_overlap, largest, measure_template
from tests.conftest import copy_real_faces


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner()


@pytest.fixture(scope="module")
def chips(utkface_all, tmp_path_factory):
    """40 real chips (a seeded draw over ages 1..100), opened as RGB."""
    folder = tmp_path_factory.mktemp("chips40")
    names = copy_real_faces(utkface_all, folder, 40, seed=3)
    return [Image.open(folder / name).convert("RGB") for name in names]


@pytest.fixture(scope="module")
def detectable(aligner, chips):
    """The chips whose face dlib finds on its own: the material for composed photos."""
    return [chip for chip in chips if aligner.find(chip)]


def _eye_angle_degrees(landmarks):
    right, left = landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)
    return np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))


def test_faces_are_found_in_nearly_all_chips_and_realigned_chips_overlap_the_originals(aligner, chips):
    found = [largest(aligner.find(chip)) for chip in chips]
    assert sum(face is not None for face in found) >= 0.9 * len(chips)
    overlaps = [chip_overlap(face.chip_to_image, chip.size) for face, chip in zip(found, chips) if face is not None]
    assert np.median(overlaps) > 0.85
    for face in found:
        if face is not None:
            assert face.chip.size == (CHIP_SIZE, CHIP_SIZE)


def test_chip_template_matches_what_dlib_measures_on_real_chips(aligner, chips):
    measured, count = measure_template(aligner, chips)
    assert count >= 0.9 * len(chips)
    assert np.abs(measured - CHIP_TEMPLATE).max() <= 4.0, measured


def test_a_tilted_face_in_a_larger_photo_comes_back_level_and_like_the_chip(aligner, detectable):
    chip = detectable[1]
    photo = Image.new("RGB", (700, 500), (90, 110, 100))
    photo.paste(chip.resize((300, 300), Image.BILINEAR).rotate(25, resample=Image.BILINEAR, fillcolor=(90, 110, 100)),
                (250, 120))
    face = largest(aligner.find(photo))
    assert face is not None
    assert abs(abs(_eye_angle_degrees(face.landmarks)) - 25) < 8  # dlib saw the tilt...
    again = largest(aligner.find(face.chip))
    assert again is not None and abs(_eye_angle_degrees(again.landmarks)) < 4  # ...and the chip is level
    assert np.abs(again.landmarks - CHIP_TEMPLATE).mean() < 6  # framed like a UTKFace chip


def test_several_faces_in_one_image_are_all_found_left_to_right(aligner, detectable):
    group = Image.new("RGB", (3 * 260, 300), (200, 200, 200))
    for slot, chip in enumerate(detectable[:3]):
        group.paste(chip, (30 + 260 * slot, 50))
    faces = aligner.find(group)
    assert len(faces) == 3
    lefts = [face.box[0] for face in faces]
    assert lefts == sorted(lefts) and lefts[0] < 260 <= lefts[1] < 520 <= lefts[2]


def test_a_face_in_a_very_large_photo_is_found_on_a_downscaled_copy_and_cut_from_the_original(aligner, detectable):
    photo = Image.new("RGB", (8000, 6000), (120, 120, 120))
    photo.paste(detectable[2].resize((1600, 1600), Image.BILINEAR), (3000, 2000))
    face = largest(aligner.find(photo))
    assert face is not None
    left, top, right, bottom = face.box
    assert 2900 < left < 3600 and 1900 < top < 2600 and right - left > 600  # in original pixels
    assert face.landmarks[:, 0].min() > 3000 and face.landmarks[:, 0].max() < 4600


def test_no_face_in_a_tiny_image_or_a_faceless_one(aligner, chips):
    assert aligner.find(chips[0].resize((20, 20))) == []
    assert aligner.find(Image.new("RGB", (300, 300), (128, 128, 128))) == []


def test_the_cnn_detector_and_68_landmarks_align_like_the_defaults(detectable):
    cnn = FaceAligner(detector="cnn", landmarks=68)
    face = largest(cnn.find(detectable[4]))
    assert face is not None and face.landmarks.shape == (5, 2)
    assert np.abs(face.landmarks - CHIP_TEMPLATE).mean() < 8


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        FaceAligner(detector="yolo")


def test_face_benchmark_writes_its_figures(utkface_dir, tmp_path):
    from edge_age.cli import main

    assert main(["face-benchmark", "--data", str(utkface_dir), "--count", "12", "--out", str(tmp_path / "faces")]) == 0
    import json
    result = json.loads((tmp_path / "faces.json").read_text())
    assert result["n"] == 12 and 0 < result["found"] <= 12 and result["ms_median"] > 0
    assert 0.5 < result["overlap_median"] <= 1.0
    assert "faces found" in (tmp_path / "faces.md").read_text()
