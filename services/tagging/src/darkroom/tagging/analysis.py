"""AI analysis of one picture, run in a worker process: faces with their embeddings, and
exposed content.

- Faces: dlib's HOG detector, its 5-point landmarks and its ResNet embedding (128 numbers;
  two photos of one person lie within about 0.6 of each other). The model files come with
  the ``face-recognition-models`` package; nothing is downloaded.
- Content safety: nudenet's bundled ``320n.onnx`` detector; the labels of exposed content
  that a project may want to classify higher. Its input and output are prepared here as
  ``NudeDetector.detect`` prepares them, with arrays: its own loop over the model's 2,100
  candidate boxes, in Python, took a fifth of the model's time.

Models are loaded once per worker process, on first use.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkroom.common.imaging import fitted, poster_frame

# nudenet's labels that make a picture sensitive (feet, armpits, bellies and male chests do not)
SENSITIVE = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)


# nudenet's own figures (NudeDetector.detect, nudenet pinned): the side of the square its model
# reads, the floor of a candidate box's score, and its non-maximum suppression's score floor
# and overlap across labels
SAFETY_INPUT = 320
SAFETY_CANDIDATE_SCORE = 0.2
SAFETY_SUPPRESSION_SCORE = 0.25
SAFETY_SUPPRESSION_OVERLAP = 0.45


@dataclass(frozen=True)
class FoundFace:
    box: tuple[float, float, float, float]  # left, top, right, bottom as shares of the picture
    embedding: tuple[float, ...]


@dataclass(frozen=True)
class Detection:
    label: str  # nudenet's: FEMALE_BREAST_EXPOSED, FACE_MALE, ...
    score: float
    box: tuple[int, int, int, int]  # left, top, width, height in pixels


@dataclass(frozen=True)
class Analysis:
    faces: list[FoundFace]
    sensitive: list[str]  # nudenet labels, sorted


@dataclass(frozen=True)
class Options:
    size: int
    upsample: int
    min_score: float
    min_face: int


def analyse_picture(data: bytes, options: Options) -> Analysis:
    """Faces and exposed content of an image file; raises ``UnreadableMedia``."""
    return _analyse(np.asarray(fitted(data, options.size).convert("RGB")), options)


def analyse_video(path: str, options: Options) -> Analysis:
    """The same, of a video's poster frame."""
    frame = fitted(poster_frame(path, None), options.size, orientation=1)
    return _analyse(np.asarray(frame.convert("RGB")), options)


def faces_of(rgb: np.ndarray, upsample: int, min_face: int) -> list[FoundFace]:
    """Every face dlib finds in an RGB picture at least ``min_face`` pixels wide, with its
    embedding."""
    detector, landmarks, encoder = _dlib()
    height, width = rgb.shape[:2]
    found = []
    for box in detector(rgb, upsample):
        if box.width() < min_face:
            continue
        shape = landmarks(rgb, box)
        embedding = encoder.compute_face_descriptor(rgb, shape)
        found.append(
            FoundFace(
                box=(
                    max(0.0, box.left() / width),
                    max(0.0, box.top() / height),
                    min(1.0, box.right() / width),
                    min(1.0, box.bottom() / height),
                ),
                embedding=tuple(float(x) for x in embedding),
            )
        )
    return found


def detections(rgb: np.ndarray) -> list[Detection]:
    """What nudenet's ``NudeDetector.detect`` finds in the picture (it is given the same
    picture in BGR): each label with its score and box (left, top, width, height in pixels),
    after its non-maximum suppression across labels."""
    import cv2

    session, labels = _nudenet()
    height, width = rgb.shape[:2]
    side = max(height, width)
    # nudenet pads the picture to a square at its bottom right, then scales it to the input;
    # the channels it hands the model are the picture's in BGR order.
    square = cv2.copyMakeBorder(rgb, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT)
    size = (SAFETY_INPUT, SAFETY_INPUT)
    blob = cv2.dnn.blobFromImage(square, 1 / 255.0, size, (0, 0, 0), swapRB=True, crop=False)
    [output] = session.run(None, {session.get_inputs()[0].name: blob})
    candidates = output[0].T  # a row a candidate: centre x, centre y, width, height, scores
    scores = candidates[:, 4:]
    best = scores.max(axis=1)
    kept = np.flatnonzero(best >= SAFETY_CANDIDATE_SCORE)
    if kept.size == 0:
        return []
    centre_x, centre_y, box_width, box_height = candidates[kept, :4].T * (side / SAFETY_INPUT)
    left = np.clip(centre_x - box_width / 2, 0, width)
    top = np.clip(centre_y - box_height / 2, 0, height)
    box_width = np.minimum(box_width, width - left)
    box_height = np.minimum(box_height, height - top)
    boxes = np.stack([left, top, box_width, box_height], axis=1)
    picked = cv2.dnn.NMSBoxes(
        boxes.tolist(), best[kept].tolist(), SAFETY_SUPPRESSION_SCORE, SAFETY_SUPPRESSION_OVERLAP
    )
    label = scores[kept].argmax(axis=1)
    return [
        Detection(
            label=labels[label[i]],
            score=float(best[kept[i]]),
            box=(int(left[i]), int(top[i]), int(box_width[i]), int(box_height[i])),
        )
        for i in picked
    ]


def _analyse(rgb: np.ndarray, options: Options) -> Analysis:
    sensitive = sorted(
        {
            found.label
            for found in detections(rgb)
            if found.label in SENSITIVE and found.score >= options.min_score
        }
    )
    faces = faces_of(rgb, options.upsample, options.min_face)
    return Analysis(faces=faces, sensitive=sensitive)


@functools.cache
def _dlib() -> tuple[Any, Any, Any]:
    import dlib

    models = _package_folder("face_recognition_models") / "models"
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


@functools.cache
def _nudenet() -> tuple[Any, list[str]]:
    """nudenet's model in an ONNX session, and its labels in the order of its outputs."""
    import cv2
    import onnxruntime
    from nudenet import nudenet

    # One thread: the worker pool already runs one analysis per core (NudeDetector() would
    # give the session a thread per core, and takes no session options; OpenCV, which
    # prepares the model's input, starts a thread per core too).
    cv2.setNumThreads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(_package_folder("nudenet") / "320n.onnx"),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return session, list(vars(nudenet)["__labels"])  # its module's list (nudenet pinned)


def _package_folder(name: str) -> Path:
    """A package's folder, found without importing it (face_recognition_models' __init__
    needs setuptools' pkg_resources only to say where its own files are)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))
