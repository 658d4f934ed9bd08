"""AI analysis of one picture, run in a worker process: faces with their embeddings, and
exposed content.

- Faces: dlib's HOG detector, its 5-point landmarks and its ResNet embedding (128 numbers;
  two photos of one person lie within about 0.6 of each other). The model files come with
  the ``face-recognition-models`` package; nothing is downloaded.
- Content safety: nudenet's bundled ``320n.onnx`` detector; the labels of exposed content
  that a project may want to classify higher.

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


@dataclass(frozen=True)
class FoundFace:
    box: tuple[float, float, float, float]  # left, top, right, bottom as shares of the picture
    embedding: tuple[float, ...]


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


def _analyse(rgb: np.ndarray, options: Options) -> Analysis:
    detections = _nudenet().detect(np.ascontiguousarray(rgb[:, :, ::-1]))  # it takes BGR
    sensitive = sorted(
        {
            d["class"]
            for d in detections
            if d["class"] in SENSITIVE and d["score"] >= options.min_score
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
def _nudenet() -> Any:
    import onnxruntime
    from nudenet import NudeDetector

    # One thread: the worker pool already runs one analysis per core. NudeDetector() takes no
    # session options, and would load the model into a session with a thread per core first:
    # its fields are set here as its __init__ sets them (nudenet pinned), on our session.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    detector = NudeDetector.__new__(NudeDetector)
    detector.onnx_session = onnxruntime.InferenceSession(
        str(_package_folder("nudenet") / "320n.onnx"),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    detector.input_width = detector.input_height = 320
    detector.input_name = detector.onnx_session.get_inputs()[0].name
    return detector


def _package_folder(name: str) -> Path:
    """A package's folder, found without importing it (face_recognition_models' __init__
    needs setuptools' pkg_resources only to say where its own files are)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))
