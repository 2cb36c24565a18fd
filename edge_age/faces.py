"""Faces in real photos: dlib detection, 5-point landmarks, eye-line alignment and the UTKFace chip framing.

UTKFace's aligned-and-cropped chips were made with dlib's face-chip alignment, so a photo cropped the same
way looks like a training image. ``CHIP_TEMPLATE`` holds where dlib's 5-point landmarks fall in a 200x200
UTKFace chip (the median over real chips; ``measure_template`` re-measures it and a test checks it). A face
is aligned by rotating so the line between the eye centres is horizontal (the paper's preprocessing), then
scaling and shifting so its landmarks best fit the template: run on a UTKFace chip it gives back nearly
the same chip.

The models come with the ``faces`` extra (dlib-bin, face-recognition-models): nothing is downloaded.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CHIP_SIZE = 200
# dlib 5-point landmarks in a 200x200 UTKFace chip (x, y): outer and inner corner of the eye on the image's
# right, outer and inner corner of the eye on its left, bottom of the nose. Median over 100 real chips
# (spread 3-5 px); re-measure with measure_template().
CHIP_TEMPLATE = np.array([[154.0, 61.0], [122.0, 63.0], [41.0, 61.0], [74.0, 63.0], [98.0, 117.0]])
# Where the eye centres fall in the chip (means of the corner pairs): (image-left eye, image-right eye). The
# phone demo aligns from two eye points (ML Kit gives no eye corners) with eye_alignment_transform.
EYE_TEMPLATE = np.array([CHIP_TEMPLATE[2:4].mean(axis=0), CHIP_TEMPLATE[0:2].mean(axis=0)])
# The 68-point model's points that correspond to the 5-point model's, so either model aligns the same way.
FIVE_FROM_68 = [45, 42, 36, 39, 33]
# Detection runs on a copy whose longest side is at most this; landmarks and the crop use the original.
DETECT_MAX_SIDE = 1280
# Below this longest side a second, upsampled detection pass looks for faces smaller than HOG's 80 px window.
UPSAMPLE_BELOW_SIDE = 1000
DETECTORS = ("hog", "cnn")


class FaceModelsMissing(ImportError):
    """dlib or its model files are not installed."""


@dataclass
class Face:
    """One face found in an image: its box and landmarks in the image's pixels, and the aligned chip."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    score: float  # detector confidence (HOG: SVM margin; CNN: MMOD score)
    landmarks: np.ndarray  # 5 x 2 (x, y), in CHIP_TEMPLATE's order
    chip: Image.Image  # CHIP_SIZE x CHIP_SIZE RGB, framed like a UTKFace chip
    chip_to_image: np.ndarray  # 2 x 3 affine: chip pixel (x, y, 1) -> image pixel

    def to_dict(self) -> dict:
        return {"box": list(self.box), "score": None if np.isnan(self.score) else round(self.score, 4),
                "landmarks": np.round(self.landmarks, 1).tolist()}


def _model_file(name: str) -> str:
    """Path of one of face-recognition-models' files, found without importing the package (its
    ``__init__`` needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing('dlib\'s model files are missing: pip install -e ".[faces]" (face-recognition-models)')
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FaceModelsMissing(f"{path} is missing: reinstall face-recognition-models")
    return str(path)


class FaceAligner:
    """Find every face in an RGB image and align each into a UTKFace-style chip."""

    def __init__(self, detector: str = "hog", landmarks: int = 5):
        try:
            import dlib
        except ImportError:
            raise FaceModelsMissing('dlib is not installed: pip install -e ".[faces]" (dlib-bin)') from None
        if detector not in DETECTORS:
            raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if landmarks not in (5, 68):
            raise ValueError(f"landmarks must be 5 or 68, not {landmarks}")
        self.detector_name = detector
        if detector == "hog":
            self._hog = dlib.get_frontal_face_detector()
        else:
            self._cnn = dlib.cnn_face_detection_model_v1(_model_file("mmod_human_face_detector.dat"))
        self.landmark_count = landmarks
        self._predictor = dlib.shape_predictor(_model_file(
            "shape_predictor_5_face_landmarks.dat" if landmarks == 5 else "shape_predictor_68_face_landmarks.dat"))
        self._dlib = dlib

    def _detect(self, pixels: np.ndarray, upsample: int) -> list[tuple[tuple[float, float, float, float], float]]:
        if self.detector_name == "hog":
            rects, scores, _ = self._hog.run(pixels, upsample, 0.0)
            return [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores)]
        found = self._cnn(pixels, upsample)
        return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence)) for d in found]

    def find(self, image: Image.Image) -> list[Face]:
        """All faces, left to right. Large images are searched at DETECT_MAX_SIDE and cropped from the original."""
        image = _rgb(image)
        pixels = np.asarray(image)
        longest = max(image.size)
        scale = min(1.0, DETECT_MAX_SIDE / longest)
        small = pixels if scale == 1.0 else np.asarray(
            image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR))
        detections = self._detect(small, 0)
        if not detections and longest < UPSAMPLE_BELOW_SIDE:
            detections = self._detect(small, 1)
        faces = []
        for (left, top, right, bottom), score in detections:
            box = [round(v / scale) for v in (left, top, right, bottom)]
            rect = self._dlib.rectangle(*box)
            shape = self._predictor(pixels, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            if self.landmark_count == 68:
                points = points[FIVE_FROM_68]
            chip, chip_to_image = align(image, points)
            clipped = (max(box[0], 0), max(box[1], 0), min(box[2], image.width), min(box[3], image.height))
            faces.append(Face(clipped, score, points, chip, chip_to_image))
        return sorted(faces, key=lambda face: face.box[0])


def alignment_transform(landmarks: np.ndarray, template: np.ndarray = CHIP_TEMPLATE) -> np.ndarray:
    """2 x 3 affine taking chip pixels to image pixels: the rotation levels the eye line, the scale and shift
    fit the landmarks to the template in the least-squares sense."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = eye_centres(landmarks)  # as seen in the image
    dx, dy = eye_right - eye_left
    angle = np.arctan2(dy, dx)  # the eye line's tilt in the image
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])  # chip direction -> image direction
    centred_image = landmarks - landmarks.mean(axis=0)
    centred_template = template - template.mean(axis=0)
    levelled = centred_image @ rotation  # image points rotated so the eye line is horizontal
    scale = float((levelled * centred_template).sum() / (centred_template ** 2).sum())  # image px per chip px
    linear = rotation * scale
    shift = landmarks.mean(axis=0) - linear @ template.mean(axis=0)
    return np.hstack([linear, shift[:, None]])


def eye_alignment_transform(eye_left: np.ndarray, eye_right: np.ndarray) -> np.ndarray:
    """2 x 3 affine taking chip pixels to image pixels from the two eye centres alone (the eye on the image's
    left, then the one on its right): the similarity that puts them on EYE_TEMPLATE exactly. It is what the
    Android demo computes from ML Kit's eye points (android_demo/core, FaceCrop.java)."""
    (lx, ly), (rx, ry) = np.asarray(eye_left, np.float64), np.asarray(eye_right, np.float64)
    (tlx, tly), (trx, _) = EYE_TEMPLATE
    cos_scale, sin_scale = (rx - lx) / (trx - tlx), (ry - ly) / (trx - tlx)  # the template's eye line is level
    shift = (lx - (cos_scale * tlx - sin_scale * tly), ly - (sin_scale * tlx + cos_scale * tly))
    return np.array([[cos_scale, -sin_scale, shift[0]], [sin_scale, cos_scale, shift[1]]])


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye, image-right eye) centres from 5 landmarks in CHIP_TEMPLATE's order."""
    landmarks = np.asarray(landmarks, np.float64)
    return landmarks[2:4].mean(axis=0), landmarks[0:2].mean(axis=0)


def align(image: Image.Image, landmarks: np.ndarray, size: int = CHIP_SIZE) -> tuple[Image.Image, np.ndarray]:
    """Cut the face out of the original image as a size x size chip (bilinear); outside the image is black."""
    chip_to_image = alignment_transform(landmarks)
    per_pixel = chip_to_image.copy()
    per_pixel[:, :2] *= CHIP_SIZE / size
    chip = _rgb(image).transform((size, size), Image.AFFINE, per_pixel.reshape(-1).tolist(),
                                          resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return chip, chip_to_image


def chip_overlap(chip_to_image: np.ndarray, image_size: tuple[int, int], grid: int = 200) -> float:
    """Intersection over union of the crop's footprint in the image and the whole image: how much a
    re-aligned UTKFace chip covers the original chip (1.0 = the same square)."""
    steps = (np.arange(grid) + 0.5) * CHIP_SIZE / grid
    xs, ys = np.meshgrid(steps, steps)
    mapped = chip_to_image @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    inside = ((mapped[0] >= 0) & (mapped[0] < image_size[0]) & (mapped[1] >= 0) & (mapped[1] < image_size[1])).mean()
    crop_area = abs(np.linalg.det(chip_to_image[:, :2])) * CHIP_SIZE ** 2
    intersection = inside * crop_area
    return float(intersection / (crop_area + image_size[0] * image_size[1] - intersection))


def measure_template(aligner: FaceAligner, chips: list[Image.Image]) -> tuple[np.ndarray, int]:
    """Median landmark positions over real 200x200 UTKFace chips (the largest face in each), and how many
    chips had a face: the numbers CHIP_TEMPLATE was set from."""
    points = [face.landmarks for face in map(largest, map(aligner.find, chips)) if face is not None]
    if not points:
        raise ValueError("no face found in any chip")
    return np.median(np.array(points), axis=0), len(points)


def whole_image_face(image: Image.Image) -> Face:
    """The image itself as the face chip, for inputs that are already aligned crops."""
    width, height = image.size
    return Face(box=(0, 0, width, height), score=float("nan"), landmarks=np.zeros((0, 2)), chip=image,
                chip_to_image=np.array([[width / CHIP_SIZE, 0, 0], [0, height / CHIP_SIZE, 0]]))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def largest(faces: list[Face]) -> Face | None:
    """The face an evaluation of one-person images means: the largest box."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
