"""Media uploaded in, a duplicates result out for each; a user's review kept for good.

A medium joins the group of its closest match in the project: a medium with the same bytes
first, else the nearest within both perceptual distances. When that match had no group yet,
the two start one, and the match gets a new result too; its other matches in no group join
as well. Members of a group the newcomer is near and closer to than to their closest so far
get a new result with it as their closest, so that every similarity is to the closest member
whatever the order of arrival. Two groups a newcomer is near are not merged. Grouping in a project
happens under a lock held to the end of the transaction, so concurrent copies end in one group.

A medium that could not be hashed fails, yet joins the media with the same bytes: only its
near copies cannot be known.

A review ("these two are not duplicates") takes the marked medium out of the group, finds it
another group if one fits, and from then on neither medium is placed in a group that holds the
other.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from darkroom.common.broker import Write
from darkroom.common.db import Transaction, publish
from darkroom.common.events import (
    DedupCommand,
    MediaDuplicates,
    MediaUploaded,
    Outcome,
)
from darkroom.common.imaging import Failure, attempt
from darkroom.common.settings import DedupSettings
from darkroom.dedup import store
from darkroom.dedup.hashing import distance
from darkroom.dedup.store import Candidate, Member
from darkroom.dedup.worker import Hasher

SOURCE = "darkroom/dedup"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    hasher: Hasher
    settings: DedupSettings


async def on_uploaded(event: MediaUploaded, deps: Deps) -> Write:
    """Hash the medium; then, in the transaction, place it in its group (or none), and say so."""
    read = await attempt(deps.hasher.hash(event))
    hashes = None if isinstance(read, Failure) else read
    failure = (read.code, read.message) if isinstance(read, Failure) else None
    cut_short = read.code if isinstance(read, Failure) and read.transient else None
    ref = event.media

    async def write(tx: Transaction) -> None:
        await store.lock_project(tx, ref.project_id)
        earlier = await store.member(tx, ref.project_id, ref.media_id) if cut_short else None
        if earlier is not None and earlier.outcome == Outcome.OK:
            # processed again, cut short: the hashes read before stand, and so does its group
            log.warning(
                "hashing the medium again failed (%s); its earlier result stands",
                cut_short,
                extra={"media_id": str(ref.media_id)},
            )
            await _announce(tx, ref.project_id, ref.media_id)
            return
        await store.save(tx, ref, event.sha256, hashes, failure)
        medium = await store.member(tx, ref.project_id, ref.media_id)
        assert medium is not None
        if failure is None and medium.group_id is not None:
            await _announce(tx, ref.project_id, medium.media_id)  # read again: its group stands
        else:  # placed anew; without hashes (a failure) only with copies of its bytes
            await _rejoin(tx, medium, deps.settings)

    return write


async def on_command(command: DedupCommand, tx: Transaction, deps: Deps) -> None:
    """A user's review decision: ``media_id`` is not a duplicate of ``other_media_id``."""
    project_id = command.project_id
    marked, other = command.command.media_id, command.command.other_media_id
    if marked == other:
        log.warning("a medium cannot be reviewed against itself", extra={"media_id": marked})
        return
    await store.lock_project(tx, project_id)
    # Kept even when neither medium is known yet: it holds for whatever arrives later.
    await store.not_duplicates(tx, project_id, marked, other)
    one = await store.member(tx, project_id, marked)
    two = await store.member(tx, project_id, other)
    if one is None or two is None or one.group_id is None or one.group_id != two.group_id:
        return
    await _rejoin(tx, one, deps.settings)


async def _rejoin(tx: Transaction, medium: Member, settings: DedupSettings) -> None:
    """Take ``medium`` out of its group, if it is in one, then place it anew, and so every
    member left near no one by its going."""
    adrift = await _leave(tx, medium, settings) if medium.group_id is not None else []
    await _join(tx, medium, settings)
    for media_id in adrift:
        again = await store.member(tx, medium.ref.project_id, media_id)
        assert again is not None
        if again.group_id is None:  # not placed meanwhile, beside one joined before it
            await _join(tx, again, settings)


async def _leave(tx: Transaction, medium: Member, settings: DedupSettings) -> list[uuid.UUID]:
    """Take ``medium`` out of its group: a member whose closest it was stays only beside
    another it is near, else leaves too (returned, to be placed anew); a group left with one
    member is dissolved."""
    group = medium.group_id
    assert group is not None
    await store.place(tx, medium.media_id, None)
    rest = await store.members(tx, group)
    adrift: list[uuid.UUID] = []
    for member in rest:
        if member.closest_media_id != medium.media_id:
            continue
        near = [o for o in rest if o.media_id != member.media_id and _near(member, o, settings)]
        if near:
            await _closest_within(tx, member, near, group)
        else:
            await store.place(tx, member.media_id, None)
            adrift.append(member.media_id)
    left = await store.members(tx, group)
    if len(left) == 1:  # a group of one is no group
        await store.place(tx, left[0].media_id, None)
        await _announce(tx, medium.ref.project_id, left[0].media_id)
    return adrift


async def _join(tx: Transaction, medium: Member, settings: DedupSettings) -> None:
    """Place ``medium`` with its closest match, never with a medium a user kept apart."""
    project_id = medium.ref.project_id
    apart = await store.partners(tx, project_id, medium.media_id)
    barred = await store.groups_of(tx, apart) if apart else set()
    found = [
        candidate
        for candidate in await store.candidates(
            tx,
            medium,
            dhash_distance=settings.near_dhash_distance,
            phash_distance=settings.near_phash_distance,
        )
        if candidate.media_id not in apart and candidate.group_id not in barred
    ]
    if not found:
        await store.place(tx, medium.media_id, None)
        await _announce(tx, project_id, medium.media_id)
        return
    best = min(found, key=lambda c: (not c.exact, c.distance, str(c.media_id)))
    similarity = _similarity(best)
    group = best.group_id or uuid.uuid4()
    if best.group_id is None:  # the two start a group: the match learns it too
        await store.place(tx, best.media_id, group, medium.media_id, similarity, best.exact)
        await _announce(tx, project_id, best.media_id)
    await store.place(tx, medium.media_id, group, best.media_id, similarity, best.exact)
    await _announce(tx, project_id, medium.media_id)
    if best.group_id is not None:
        await _closer_newcomer(tx, medium, group, settings)
    # Its other near matches in no group join too (one near only this newcomer came before
    # it): whether they are grouped does not depend on the order they arrived in.
    for loose in found:
        if loose.group_id is None and loose.media_id != best.media_id:
            await _pull(tx, loose, medium, group, settings)


async def _pull(
    tx: Transaction, loose: Candidate, newcomer: Member, group: uuid.UUID, settings: DedupSettings
) -> None:
    """A medium in no group, near ``newcomer``, into the newcomer's group, unless a user kept
    it apart from a member."""
    project_id = newcomer.ref.project_id
    apart = await store.partners(tx, project_id, loose.media_id)
    if apart and group in await store.groups_of(tx, apart):
        return
    await store.place(tx, loose.media_id, group, newcomer.media_id, _similarity(loose), loose.exact)
    await _announce(tx, project_id, loose.media_id)
    pulled = await store.member(tx, project_id, loose.media_id)
    assert pulled is not None
    await _closer_newcomer(tx, pulled, group, settings)


async def _closer_newcomer(
    tx: Transaction, newcomer: Member, group_id: uuid.UUID, settings: DedupSettings
) -> None:
    """Members near the newcomer and closer to it than to their closest so far take it as
    their closest: each member's similarity is to its closest in the group, whatever the
    order of arrival, and a member's closest is always one it would be matched with."""
    for member in await store.members(tx, group_id):
        if member.media_id == newcomer.media_id or not _near(member, newcomer, settings):
            continue
        score = _score(member, newcomer, group_id)
        if (score.exact, _similarity(score)) > (member.exact, member.similarity or 0.0):
            await store.place(
                tx, member.media_id, group_id, newcomer.media_id, _similarity(score), score.exact
            )
            await _announce(tx, member.ref.project_id, member.media_id)


async def _closest_within(
    tx: Transaction, member: Member, group: list[Member], group_id: uuid.UUID
) -> None:
    """A member whose closest match left the group gets the closest of ``group``."""
    scored = [
        _score(member, other, group_id) for other in group if other.media_id != member.media_id
    ]
    best = min(scored, key=lambda c: (not c.exact, c.distance, str(c.media_id)))
    await store.place(tx, member.media_id, group_id, best.media_id, _similarity(best), best.exact)
    await _announce(tx, member.ref.project_id, member.media_id)


def _score(member: Member, other: Member, group_id: uuid.UUID) -> Candidate:
    """``other`` as a match of ``member``."""
    return Candidate(
        other.media_id, group_id, other.sha256 == member.sha256, _distance(member, other)
    )


def _near(one: Member, two: Member, settings: DedupSettings) -> bool:
    """Whether the two would be matched: the same bytes, or within both hash distances."""
    if one.sha256 == two.sha256:
        return True
    if None in (one.phash, one.dhash, two.phash, two.dhash):
        return False
    return (
        distance(one.dhash or 0, two.dhash or 0) <= settings.near_dhash_distance
        and distance(one.phash or 0, two.phash or 0) <= settings.near_phash_distance
    )


def _distance(one: Member, two: Member) -> int:
    if None in (one.phash, one.dhash, two.phash, two.dhash):
        return 128
    return distance(one.phash or 0, two.phash or 0) + distance(one.dhash or 0, two.dhash or 0)


def _similarity(candidate: Candidate) -> float:
    """1.0 for the same bytes; else the share of the 128 hash bits that agree."""
    return 1.0 if candidate.exact else round(1 - candidate.distance / 128, 3)


async def _announce(tx: Transaction, project_id: uuid.UUID, media_id: uuid.UUID) -> None:
    """Publish where a medium stands now (one whose hashing failed may still have copies of
    its bytes)."""
    member = await store.member(tx, project_id, media_id)
    assert member is not None
    await publish(
        tx,
        MediaDuplicates(
            media=member.ref,
            outcome=Outcome(member.outcome),
            reason_code=member.reason_code,
            reason=member.reason,
            group_id=member.group_id,
            closest_media_id=member.closest_media_id,
            similarity=member.similarity,
            exact=member.exact,
        ),
        source=SOURCE,
    )
