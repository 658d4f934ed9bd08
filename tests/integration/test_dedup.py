"""The dedup service on the real stack: uploads in, duplicate groups out, reviews kept."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from darkroom.common.events import (
    DedupCommand,
    MediaDuplicates,
    MediaRef,
    MediaUploaded,
    NotDuplicate,
)
from darkroom.common.imaging import UnreadableMedia
from darkroom.common.pool import WorkFailed
from darkroom.common.settings import CommonSettings, DedupSettings
from darkroom.dedup.app import create_runtime
from darkroom.dedup.hashing import Hashes, distance, picture_hashes
from darkroom.dedup.worker import Hasher

from .backbone import eventually
from .consumers import Consumer, consumer

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
JPEGS = CORPUS / "cameras" / "jpg"
# Two different photos that are each other's nearest in the corpus by pHash (distance 8).
FUJI, KODAK = JPEGS / "FujiFilm FinePixS5500.jpg", JPEGS / "Kodak PIXPRO FZ201.jpg"


def reencoded(path: Path, *, scale: float = 0.5, quality: int = 60) -> bytes:
    """The photo as a user's other copy: smaller, recompressed, without its EXIF."""
    with Image.open(path) as file:
        image = file.convert("RGB")
    smaller = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=quality)
    return out.getvalue()


def together(results: dict[uuid.UUID, Any], one: MediaRef, two: MediaRef) -> bool:
    """Whether the two media are in the same group."""
    group = results[one.media_id]["group_id"]
    return group is not None and results[two.media_id]["group_id"] == group


@asynccontextmanager
async def dedup_service(
    settings: CommonSettings,
    new_database: Callable[[], Awaitable[str]],
    unique: str,
    **overrides: Any,
) -> AsyncIterator[Consumer]:
    """The dedup service (2 hashing workers) in a group and database of its own, not started."""
    async with consumer(
        settings,
        new_database,
        unique,
        DedupSettings,
        create_runtime,
        MediaDuplicates,
        (MediaUploaded, DedupCommand),
        workers=2,
        **overrides,
    ) as service:
        yield service


@pytest.fixture
async def dedup(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> AsyncIterator[Consumer]:
    async with dedup_service(settings, new_database, unique) as service:
        yield service


async def test_exact_and_near_copies_share_a_group_and_other_photos_do_not(
    dedup: Consumer,
) -> None:
    await dedup.start(1)
    project, elsewhere = uuid.uuid4(), uuid.uuid4()
    original = await dedup.upload(project, FUJI.read_bytes(), "Survey/one.jpg")
    [first] = (await dedup.latest(original)).values()
    assert (first["outcome"], first["group_id"]) == ("ok", None)  # alone so far

    same = await dedup.upload(project, FUJI.read_bytes(), "Backup/one.jpg")
    await dedup.latest(original, same, results=3)  # the same bytes: the two start a group
    smaller = await dedup.upload(project, reencoded(FUJI), "Phone/one-small.jpg")
    neighbour = await dedup.upload(project, KODAK.read_bytes())  # another photo, pHash 8 away
    other_project = await dedup.upload(elsewhere, FUJI.read_bytes())
    # The original's second result: it learnt it has a duplicate.
    found = await dedup.latest(original, same, smaller, neighbour, other_project, results=6)

    group = found[original.media_id]["group_id"]
    assert group is not None
    assert found[same.media_id] | {"media": None} == {
        "media": None,
        "outcome": "ok",
        "reason_code": None,
        "reason": None,
        "group_id": group,
        "closest_media_id": str(original.media_id),
        "similarity": 1.0,
        "exact": True,
    }
    assert found[original.media_id]["closest_media_id"] == str(same.media_id)
    near = found[smaller.media_id]
    assert near["group_id"] == group and not near["exact"]
    assert near["closest_media_id"] in {str(original.media_id), str(same.media_id)}
    assert 0.8 < near["similarity"] <= 1.0  # 1.0 when even the hashes agree
    assert found[neighbour.media_id]["group_id"] is None
    assert found[other_project.media_id]["group_id"] is None  # groups never cross projects


async def test_a_broken_file_fails_alone_and_the_service_goes_on(dedup: Consumer) -> None:
    await dedup.start(1)
    project = uuid.uuid4()
    broken = await dedup.upload(project, KODAK.read_bytes()[:4096])  # cut off in its pixels
    good = await dedup.upload(project, KODAK.read_bytes())
    found = await dedup.latest(broken, good)
    assert found[broken.media_id]["outcome"] == "failed"
    assert found[broken.media_id]["reason"].endswith(".")
    assert found[good.media_id]["outcome"] == "ok"
    assert all(replica.policy.halted is None for replica in dedup.replicas)


async def test_copies_of_a_file_that_cannot_be_hashed_are_still_one_group(
    dedup: Consumer,
) -> None:
    """Two uploads of the same broken file: each fails (no picture to compare), and the two
    are still found to be the same bytes; a good photo stays out of their group."""
    await dedup.start(1)
    project = uuid.uuid4()
    broken = KODAK.read_bytes()[:4096]
    one = await dedup.upload(project, broken, "Card/one.jpg")
    await dedup.latest(one)
    good = await dedup.upload(project, KODAK.read_bytes())
    two = await dedup.upload(project, broken, "Backup/one.jpg")
    found = await dedup.latest(one, two, good, results=4)  # one learns of two: a second result
    assert [found[m.media_id]["outcome"] for m in (one, two, good)] == ["failed", "failed", "ok"]
    assert found[two.media_id]["reason"] == found[one.media_id]["reason"]
    assert together(found, one, two)
    assert found[two.media_id]["closest_media_id"] == str(one.media_id)
    assert (found[two.media_id]["exact"], found[two.media_id]["similarity"]) == (True, 1.0)
    assert found[good.media_id]["group_id"] is None


async def test_a_medium_read_well_keeps_its_group_when_a_read_again_is_cut_short(
    dedup: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processed again (a backfill) on a busy machine, its hashing passes the time limit: its
    earlier hashes and group stand, and its result is said again."""
    await dedup.start(1)
    project = uuid.uuid4()
    one = await dedup.upload(project, FUJI.read_bytes())
    await dedup.latest(one)
    two = await dedup.upload(project, reencoded(FUJI))
    first = await dedup.latest(one, two, results=3)  # two joins one: both get a result
    assert together(first, one, two)

    async def cut_short(self: Hasher, event: MediaUploaded) -> Hashes:
        raise WorkFailed("hashing_timeout", "Reading the file took longer than 30 s.")

    monkeypatch.setattr(Hasher, "hash", cut_short)
    await dedup.reprocess(two)
    again = await dedup.latest(one, two, results=4)
    assert again[two.media_id] == first[two.media_id]
    assert together(again, one, two)


async def test_two_replicas_given_copies_at_once_make_one_group(dedup: Consumer) -> None:
    """Each pair of copies is handled by the two replicas at the same moment."""
    await dedup.start(2)
    await asyncio.sleep(3)  # both members of the group before the uploads
    project = uuid.uuid4()
    photos = sorted(JPEGS.glob("*.jpg"))[:8]
    pairs = []
    for photo in photos:
        data = photo.read_bytes()
        pairs.append(await asyncio.gather(dedup.upload(project, data), dedup.upload(project, data)))
    found = await dedup.latest(*(ref for pair in pairs for ref in pair))
    groups = set()
    for one, two in pairs:
        assert together(found, one, two), (found[one.media_id], found[two.media_id])
        groups.add(found[one.media_id]["group_id"])
    assert len(groups) == len(pairs)


async def test_each_similarity_is_to_the_closest_member_whatever_the_order(
    dedup: Consumer,
) -> None:
    """A far copy arrives before or after a close one: the original ends as close to the close
    copy either way (not stuck with the far one that happened to come first)."""
    await dedup.start(1)
    copies = {
        "original": FUJI.read_bytes(),
        "close": reencoded(FUJI, scale=0.9, quality=90),  # every hash bit agrees
        "far": reencoded(FUJI, scale=0.15, quality=10),  # 6 of 128 bits differ
    }
    runs: list[dict[str, MediaRef]] = []
    for order in (("original", "far", "close"), ("original", "close", "far")):
        project, refs = uuid.uuid4(), {}
        for name in order:  # one by one, each handled before the next arrives
            refs[name] = await dedup.upload(project, copies[name], f"{name}.jpg")
            await dedup.latest(*refs.values())
        runs.append(refs)

    async def similarities(refs: dict[str, MediaRef]) -> dict[str, float]:
        found = await dedup.latest(*refs.values())
        return {name: found[ref.media_id]["similarity"] for name, ref in refs.items()}

    async def alike() -> dict[str, float] | None:
        first, second = await similarities(runs[0]), await similarities(runs[1])
        return first if first == second else None

    final = await eventually(alike, timeout=30)
    assert final == {"original": 1.0, "close": 1.0, "far": 0.953}


async def test_a_review_keeps_two_media_apart_whatever_comes_later(dedup: Consumer) -> None:
    await dedup.start(1)
    project = uuid.uuid4()
    first = await dedup.upload(project, FUJI.read_bytes())
    await dedup.latest(first)
    second = await dedup.upload(project, reencoded(FUJI))
    grouped = await dedup.latest(first, second, results=3)
    assert together(grouped, first, second)

    await dedup.send(
        DedupCommand(
            project_id=project,
            command=NotDuplicate(media_id=second.media_id, other_media_id=first.media_id),
        )
    )
    apart = await dedup.latest(first, second, results=5)
    assert apart[first.media_id]["group_id"] is None  # a group of one is no group
    assert apart[second.media_id]["group_id"] is None

    # Later copies of each: each joins its own copy, never the two together.
    third = await dedup.upload(project, FUJI.read_bytes())
    fourth = await dedup.upload(project, reencoded(FUJI))
    final = await dedup.latest(first, second, third, fourth, results=9)
    assert together(final, third, first)
    assert together(final, fourth, second)
    assert final[first.media_id]["group_id"] != final[second.media_id]["group_id"]


def bits(*positions: range) -> int:
    """A 64-bit hash with these bits set."""
    return sum(1 << bit for span in positions for bit in span)


def hashed_by_path(monkeypatch: pytest.MonkeyPatch, hashes: dict[str, Hashes]) -> None:
    """Each medium hashed as given for its path (any other: unreadable), to place media at
    chosen distances from each other."""

    async def given(self: Hasher, event: MediaUploaded) -> Hashes:
        if event.media.relative_path not in hashes:
            raise UnreadableMedia("unreadable_image", "The image cannot be decoded.")
        return hashes[event.media.relative_path]

    monkeypatch.setattr(Hasher, "hash", given)


async def test_a_members_closest_is_always_one_it_would_be_matched_with(
    dedup: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Y is near M (dHash 8, pHash 20: at both limits); Z, arriving next, is near M too, and
    fewer bits from Y in all (dHash 11, pHash 0) but not near it: Y's closest stays M, with
    M's similarity, rather than a medium it would never be grouped with."""
    hashed_by_path(
        monkeypatch,
        {
            "M.jpg": Hashes(phash=0, dhash=0),
            "Y.jpg": Hashes(phash=bits(range(20)), dhash=bits(range(8))),
            "Z.jpg": Hashes(phash=bits(range(20)), dhash=bits(range(8, 11))),
        },
    )
    await dedup.start(1)
    project = uuid.uuid4()
    m = await dedup.upload(project, b"m", "M.jpg")
    await dedup.latest(m)
    y = await dedup.upload(project, b"y", "Y.jpg")
    await dedup.latest(m, y, results=3)
    z = await dedup.upload(project, b"z", "Z.jpg")
    found = await dedup.latest(m, y, z, results=5)  # Z, and M now closer to Z than to Y
    assert together(found, m, y) and together(found, m, z)
    assert found[y.media_id]["closest_media_id"] == str(m.media_id)
    assert found[y.media_id]["similarity"] == round(1 - 28 / 128, 3)
    assert found[m.media_id]["closest_media_id"] == str(z.media_id)


async def test_a_medium_near_only_a_later_one_is_grouped_whatever_the_order(
    dedup: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A and B are not near each other (dHash 12 apart), C is near both (6 from each): in the
    order A, B, C the three end in one group, as they do in the order A, C, B."""
    hashed_by_path(
        monkeypatch,
        {
            "A.jpg": Hashes(phash=0, dhash=0),
            "B.jpg": Hashes(phash=0, dhash=bits(range(12))),
            "C.jpg": Hashes(phash=0, dhash=bits(range(6))),
        },
    )
    await dedup.start(1)
    project = uuid.uuid4()
    a = await dedup.upload(project, b"a", "A.jpg")
    b = await dedup.upload(project, b"b", "B.jpg")
    await dedup.latest(a, b)
    c = await dedup.upload(project, b"c", "C.jpg")
    found = await dedup.latest(a, b, c, results=5)  # C; then A and B learn their group
    assert together(found, a, c) and together(found, b, c)
    for loose in (a, b):
        assert found[loose.media_id]["closest_media_id"] == str(c.media_id)
        assert found[loose.media_id]["similarity"] == round(1 - 6 / 128, 3)


async def test_a_member_that_can_no_longer_be_read_leaves_its_group_as_a_review_would(
    dedup: Consumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two near copies; the second, processed again, can no longer be read (a decoder that
    now refuses it): it fails and leaves, and the first, alone, is in no group."""
    hashed_by_path(monkeypatch, {"one.jpg": Hashes(phash=0, dhash=0)})
    await dedup.start(1)
    project = uuid.uuid4()
    one = await dedup.upload(project, b"1", "one.jpg")
    await dedup.latest(one)
    hashed_by_path(
        monkeypatch,
        {"one.jpg": Hashes(phash=0, dhash=0), "two.jpg": Hashes(phash=bits(range(2)), dhash=0)},
    )
    two = await dedup.upload(project, b"2", "two.jpg")
    assert together(await dedup.latest(one, two, results=3), one, two)
    hashed_by_path(monkeypatch, {"one.jpg": Hashes(phash=0, dhash=0)})  # two: unreadable now
    await dedup.reprocess(two)
    final = await dedup.latest(one, two, results=5)
    assert final[two.media_id]["outcome"] == "failed"
    assert final[two.media_id]["group_id"] is None
    assert (final[one.media_id]["group_id"], final[one.media_id]["closest_media_id"]) == (
        None,
        None,
    )


def cropped(path: Path, share: float) -> bytes:
    """The photo with ``share`` of its width cut from the left: a reframed copy."""
    with Image.open(path) as file:
        image = file.convert("RGB")
    out = io.BytesIO()
    image.crop((int(image.width * share), 0, image.width, image.height)).save(out, "JPEG")
    return out.getvalue()


async def test_a_review_leaves_no_pair_grouped_beyond_the_thresholds(
    settings: CommonSettings, new_database: Callable[[], Awaitable[str]], unique: str
) -> None:
    """A, B a little reframed, C reframed twice as much: B is near both, A and C are not near
    each other. C joined through B; once B is marked not a duplicate of A, A and C must not
    stay grouped, and B and C, near each other, end together."""
    a, b, c = (cropped(FUJI, share) for share in (0, 0.06, 0.12))
    ha, hb, hc = (picture_hashes(data) for data in (a, b, c))

    def apart(x: Hashes, y: Hashes) -> tuple[int, int]:
        return distance(x.dhash or 0, y.dhash or 0), distance(x.phash or 0, y.phash or 0)

    dhash_near = max(apart(ha, hb)[0], apart(hb, hc)[0])
    phash_near = max(apart(ha, hb)[1], apart(hb, hc)[1])
    assert apart(ha, hc)[0] > dhash_near or apart(ha, hc)[1] > phash_near  # the premise
    async with dedup_service(
        settings,
        new_database,
        unique,
        near_dhash_distance=dhash_near,
        near_phash_distance=phash_near,
    ) as dedup:
        await dedup.start(1)
        project = uuid.uuid4()
        one = await dedup.upload(project, a)
        await dedup.latest(one)
        two = await dedup.upload(project, b)
        await dedup.latest(one, two, results=3)
        three = await dedup.upload(project, c)
        chained = await dedup.latest(one, two, three, results=4)
        assert together(chained, one, two) and together(chained, two, three)
        assert chained[three.media_id]["closest_media_id"] == str(two.media_id)

        await dedup.send(
            DedupCommand(
                project_id=project,
                command=NotDuplicate(media_id=two.media_id, other_media_id=one.media_id),
            )
        )

        async def reviewed() -> dict[uuid.UUID, Any] | None:
            now = await dedup.latest(one, two, three)
            return now if together(now, two, three) else None

        final = await eventually(reviewed, timeout=60)
        assert final[one.media_id]["group_id"] is None
        assert final[three.media_id]["closest_media_id"] == str(two.media_id)
