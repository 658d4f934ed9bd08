"""AI analysis of one picture: faces found and embedded, content judged, bad input refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom.common.imaging import UnreadableMedia, fitted
from darkroom.common.settings import TaggingSettings
from darkroom.tagging.analysis import (
    Detection,
    Options,
    analyse_picture,
    analyse_video,
    detections,
)

FACES = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "faces"
SETTINGS = TaggingSettings()
OPTIONS = Options(
    SETTINGS.face_image_size,
    SETTINGS.face_upsample,
    SETTINGS.safety_min_score,
    SETTINGS.face_min_pixels,
)


def test_two_people_are_two_faces_and_each_is_who_they_are() -> None:
    two = analyse_picture((FACES / "two_people.jpg").read_bytes(), OPTIONS)
    biden = analyse_picture((FACES / "people" / "biden" / "biden2.jpg").read_bytes(), OPTIONS)
    obama = analyse_picture((FACES / "people" / "obama" / "obama2.jpg").read_bytes(), OPTIONS)
    assert len(two.faces) == 2 and len(biden.faces) == len(obama.faces) == 1
    for face in two.faces:
        left, top, right, bottom = face.box
        assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
        assert len(face.embedding) == 128

    def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return float(np.linalg.norm(np.array(a) - np.array(b)))

    limit = SETTINGS.face_distance
    to_biden = sorted(distance(f.embedding, biden.faces[0].embedding) for f in two.faces)
    to_obama = sorted(distance(f.embedding, obama.faces[0].embedding) for f in two.faces)
    assert to_biden[0] < limit < to_biden[1]  # one of the two is Biden, the other is not
    assert to_obama[0] < limit < to_obama[1]
    assert two.sensitive == []


def test_a_picture_without_people_has_no_faces(tmp_path: Path) -> None:
    landscape = FACES.parents[0] / "cameras" / "jpg" / "Kodak PIXPRO FZ201.jpg"
    found = analyse_picture(landscape.read_bytes(), OPTIONS)
    assert found.faces == [] and found.sensitive == []


def test_a_video_is_analysed_by_its_poster_frame() -> None:
    found = analyse_video(str(FACES / "short_hamilton_clip.mp4"), OPTIONS)
    assert len(found.faces) >= 1


def test_bytes_that_are_no_picture_are_refused_with_a_reason() -> None:
    with pytest.raises(UnreadableMedia) as raised:
        analyse_picture(b"not a picture", OPTIONS)
    assert raised.value.code == "unknown_image_format"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 20_000])  # over Pillow's limit: its warning; its error
def test_a_picture_with_more_pixels_than_is_safe_is_refused_with_a_reason(side: int) -> None:
    png = io.BytesIO()
    Image.new("1", (side, side)).save(png, "PNG")  # a few kB: one bit a pixel, compressed
    with pytest.raises(UnreadableMedia) as raised:
        analyse_picture(png.getvalue(), OPTIONS)
    assert raised.value.code == "image_too_large"
    assert "more pixels than is safe" in raised.value.message


def test_only_exposed_content_above_the_score_makes_a_picture_sensitive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nudenet's labels, as its detector reports them, become the medium's safety labels.

    (No corpus photo shows exposed content; the detector's answer stands in for one.)
    """
    from darkroom.tagging import analysis

    def found(picture: np.ndarray) -> list[Detection]:
        assert picture.ndim == 3 and picture.shape[2] == 3
        box = (1, 2, 3, 4)
        return [
            Detection("FEMALE_BREAST_EXPOSED", 0.81, box),
            Detection("BUTTOCKS_EXPOSED", 0.31, box),  # unsure
            Detection("FEET_EXPOSED", 0.95, box),  # not sensitive
            Detection("FACE_FEMALE", 0.9, box),
        ]

    monkeypatch.setattr(analysis, "detections", found)
    found_in = analyse_picture((FACES / "obama.jpg").read_bytes(), OPTIONS)
    assert found_in.sensitive == ["FEMALE_BREAST_EXPOSED"]


PHOTOS = sorted(FACES.rglob("*.jp*g")) + sorted(FACES.rglob("*.png"))
PHOTOS += sorted((FACES.parent / "cameras" / "jpg").glob("*.jpg"))[:6]


def test_the_safety_model_finds_what_nudenets_own_detector_finds() -> None:
    """The safety model's input and output are prepared here, not by ``NudeDetector.detect``
    (its loop was slow): both must find the same things in the same pictures."""
    from nudenet import NudeDetector

    reference = NudeDetector()
    compared = 0
    for path in PHOTOS:
        rgb = np.asarray(fitted(path.read_bytes(), SETTINGS.face_image_size).convert("RGB"))
        theirs = reference.detect(np.ascontiguousarray(rgb[:, :, ::-1]))  # it takes BGR
        ours = detections(rgb)
        assert [d.label for d in ours] == [d["class"] for d in theirs], path.name
        for mine, their in zip(ours, theirs, strict=True):
            assert mine.score == pytest.approx(their["score"], abs=1e-5), path.name
            assert np.allclose(mine.box, their["box"], atol=1), path.name
        compared += len(theirs)
    assert compared >= len(PHOTOS)  # faces at least: FACE_MALE, FACE_FEMALE
