"""Dedup's pure parts: the band index's guarantee, the hashes, what crosses processes."""

from __future__ import annotations

import io
import pickle
import random
from math import comb
from pathlib import Path

import pytest
from PIL import Image

from darkroom.common.imaging import UnreadableMedia
from darkroom.common.pool import WorkFailed
from darkroom.common.settings import DedupSettings
from darkroom.dedup.bands import WIDTHS, bands, keys, probe_keys, probes, signed, unsigned
from darkroom.dedup.hashing import Hashes, distance, picture_hashes, video_hashes
from darkroom.metadata.derived import derived_images

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
FUJI = CORPUS / "cameras" / "jpg" / "FujiFilm FinePixS5500.jpg"
KODAK = CORPUS / "cameras" / "jpg" / "Kodak PIXPRO FZ201.jpg"


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for position in rng.sample(range(64), bits):
        value ^= 1 << position
    return value


@pytest.mark.parametrize("within", [0, 2, 5, 8, 10, 14])
def test_every_hash_within_the_distance_shares_a_probed_band(within: int) -> None:
    rng = random.Random(within)
    for _ in range(300):
        stored = rng.getrandbits(64)
        asked = _flip(stored, rng.randint(0, within), rng)
        assert set(keys(stored)) & set(probe_keys(asked, within))


def test_the_probes_are_each_bands_ball_and_nothing_else() -> None:
    value = random.Random(1).getrandbits(64)
    for band, width, probed in zip(bands(value), WIDTHS, probes(value, 8), strict=True):
        assert probed[0] == band
        assert len(set(probed)) == len(probed) == sum(comb(width, k) for k in range(3))
        assert all((band ^ other).bit_count() <= 2 for other in probed)


def test_keys_of_different_bands_never_collide() -> None:
    value = (1 << 64) - 1  # every band at its largest
    assert len(set(keys(value))) == len(WIDTHS)
    assert max(keys(value)) < 1 << 63  # a bigint


def test_hashes_survive_postgresql_bigint() -> None:
    for value in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        assert -(1 << 63) <= signed(value) < 1 << 63
        assert unsigned(signed(value)) == value


def _jpeg(image: Image.Image, quality: int = 60) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_smaller_recompressed_copy_is_near_and_another_photo_is_not() -> None:
    settings = DedupSettings()
    original = picture_hashes(FUJI.read_bytes())
    with Image.open(FUJI) as photo:
        copy = picture_hashes(_jpeg(photo.resize((photo.width // 3, photo.height // 3))))
    other = picture_hashes(KODAK.read_bytes())
    assert original.phash is not None and original.dhash is not None
    assert copy.phash is not None and copy.dhash is not None
    assert other.phash is not None and other.dhash is not None
    assert distance(original.dhash, copy.dhash) <= settings.near_dhash_distance
    assert distance(original.phash, copy.phash) <= settings.near_phash_distance
    # The corpus's nearest different photo by pHash: kept apart by dHash.
    assert distance(original.dhash, other.dhash) > settings.near_dhash_distance


def test_the_hashes_are_of_the_upright_picture() -> None:
    with Image.open(FUJI) as photo:
        upright = photo.convert("RGB")
        turned = upright.transpose(Image.Transpose.ROTATE_90)  # stored on its side ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the EXIF turn that makes it upright again
    out = io.BytesIO()
    turned.save(out, "JPEG", quality=90, exif=exif)
    assert picture_hashes(out.getvalue()) == picture_hashes(_jpeg(upright, 90))


def _assert_near(a: Hashes, b: Hashes) -> None:
    """Both hashes of the two pictures are within the distances dedup matches at."""
    settings = DedupSettings()
    assert a.phash is not None and a.dhash is not None
    assert b.phash is not None and b.dhash is not None
    dhash, phash = distance(a.dhash, b.dhash), distance(a.phash, b.phash)
    assert dhash <= settings.near_dhash_distance, dhash
    assert phash <= settings.near_phash_distance, phash


@pytest.mark.parametrize(
    "path",
    [
        "cameras/heic/Issue 437 (dotnet).heic",  # Samsung: EXIF 6 and no irot, decoded landscape
        "exif-samples/heic/mobile/iphone_13_pro_max.HEIC",  # EXIF 6 and irot: turned once only
    ],
)
def test_a_heic_is_near_a_jpeg_export_of_it_as_the_user_sees_it(path: str) -> None:
    heic = (CORPUS / path).read_bytes()
    _, preview = derived_images(heic)  # the metadata service's upright preview
    with Image.open(io.BytesIO(preview)) as shown:
        export = _jpeg(shown, 85)
    _assert_near(picture_hashes(heic), picture_hashes(export))


def test_an_avif_is_hashed_turned_by_its_container() -> None:
    with Image.open(FUJI) as photo:
        upright = photo.convert("RGB")
        turned = upright.transpose(Image.Transpose.ROTATE_90)  # stored on its side ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with the turn that makes it upright, which Pillow writes as irot
    out = io.BytesIO()
    turned.save(out, "AVIF", quality=90, exif=exif)
    assert b"irot" in out.getvalue()
    _assert_near(picture_hashes(out.getvalue()), picture_hashes(_jpeg(upright, 90)))


def test_a_flat_picture_has_no_hashes_to_match_on() -> None:
    black = picture_hashes(_jpeg(Image.new("RGB", (640, 480))))
    white = picture_hashes(_jpeg(Image.new("RGB", (800, 600), "white")))
    assert black.phash is black.dhash is white.phash is None


def test_broken_bytes_are_a_reason_not_a_crash() -> None:
    with pytest.raises(UnreadableMedia) as raised:
        picture_hashes(KODAK.read_bytes()[:4096])
    assert raised.value.code == "unreadable_image"
    with pytest.raises(UnreadableMedia) as raised:
        picture_hashes(b"plain text, no picture")
    assert raised.value.code == "unknown_image_format"


def test_a_video_is_hashed_by_its_poster_frame(tmp_path: Path) -> None:
    clip = CORPUS / "faces" / "short_hamilton_clip.mp4"
    hashes = video_hashes(str(clip))
    assert hashes.phash is not None and hashes == video_hashes(str(clip))
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(UnreadableMedia):
        video_hashes(str(garbage))


@pytest.mark.parametrize(
    "error", [UnreadableMedia("unreadable_image", "Broken."), WorkFailed("x_timeout", "Slow.")]
)
def test_failures_cross_from_worker_processes_whole(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), back.code, back.message) == (type(error), error.code, error.message)  # type: ignore[attr-defined]
