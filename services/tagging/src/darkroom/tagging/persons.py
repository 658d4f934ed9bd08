"""Which person a face belongs to: the placing of one picture's faces as they arrive, and the
moves of the periodic re-clustering. Pure functions of faces and persons' means.

A project's persons are looked up as one matrix of means, and a batch of faces against it in
one matrix product (numpy's BLAS, which lets go of the GIL): re-clustering compares every face
of a project with every person, which done face by face took seconds of the event loop for a
few thousand faces.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence

import numpy as np

from darkroom.tagging.store import Person, StoredFace

RECLUSTER_MARGIN = 0.05
"""A face moves to another person in re-clustering only when that one is this much nearer."""

_BLOCK = 1 << 22
"""Face-to-person distances worked out at once (faces by persons): 32 MiB of floats."""


class Means:
    """The persons' means, one row each, and who is which row."""

    def __init__(self, persons: Sequence[Person]) -> None:
        self.ids = [person.person_id for person in persons]
        self.row = {person_id: index for index, person_id in enumerate(self.ids)}
        self.matrix = np.stack([person.centroid for person in persons]) if persons else None

    def distance(self, embedding: np.ndarray, person_id: uuid.UUID) -> float:
        assert self.matrix is not None
        return float(np.linalg.norm(embedding - self.matrix[self.row[person_id]]))

    def nearest(
        self, embeddings: Sequence[np.ndarray], barred: Sequence[set[uuid.UUID]]
    ) -> list[tuple[uuid.UUID, float] | None]:
        """For each embedding the nearest person not barred for it, and how far; None when
        every person is barred. Persons are ranked by squared distances from one matrix
        product; the distance given is worked out exactly."""
        if self.matrix is None or not embeddings:
            return [None] * len(embeddings)
        means = self.matrix
        found: list[tuple[uuid.UUID, float] | None] = []
        step = max(1, _BLOCK // len(self.ids))
        for start in range(0, len(embeddings), step):
            block = np.stack(embeddings[start : start + step])
            squared = (
                (block * block).sum(axis=1)[:, None]
                - 2 * block @ means.T
                + (means * means).sum(axis=1)[None, :]
            )
            for row, bars in zip(squared, barred[start : start + step], strict=True):
                row[[self.row[p] for p in bars if p in self.row]] = np.inf
            best = squared.argmin(axis=1)
            for embedding, row, column in zip(block, squared, best, strict=True):
                found.append(
                    (self.ids[column], float(np.linalg.norm(embedding - means[column])))
                    if np.isfinite(row[column])
                    else None
                )
        return found


def assign(
    faces: list[tuple[np.ndarray, set[uuid.UUID]]],
    persons: Sequence[Person],
    distance: float,
    taken: set[uuid.UUID],
) -> list[uuid.UUID | None]:
    """The person each face of one picture joins (each face with the persons it may not): the
    nearest within ``distance``, the nearest pairs first, never a person ``taken`` or taken by
    another face of the picture (a person is in a picture once); None: a new person."""
    means = Means(persons)
    chosen: list[uuid.UUID | None] = [None] * len(faces)
    taken, waiting = set(taken), list(range(len(faces)))
    while waiting:
        matches = means.nearest(
            [faces[index][0] for index in waiting], [taken | faces[index][1] for index in waiting]
        )
        options = [
            (match[1], index, match[0])
            for index, match in zip(waiting, matches, strict=True)
            if match is not None and match[1] <= distance
        ]
        if not options:
            break  # the rest are new persons
        _, index, person_id = min(options, key=lambda option: option[:2])
        waiting.remove(index)
        chosen[index] = person_id
        taken.add(person_id)
    return chosen


def regrouped(
    faces: list[StoredFace], persons: Sequence[Person], distance: float
) -> list[tuple[StoredFace, uuid.UUID]]:
    """The faces re-clustering moves, each with the person it goes to: a face no user placed
    and of an unnamed person, to a person within ``distance`` and ``RECLUSTER_MARGIN`` nearer
    than its own, never one that took it from a user nor one already in its picture (a person
    is in a picture once); the nearest moves first."""
    means = Means(persons)
    # The persons of each picture, counted: a user may have put two of its faces in one.
    in_picture: dict[uuid.UUID, Counter[uuid.UUID]] = {}
    for face in faces:
        if face.person_id is not None:
            in_picture.setdefault(face.media_id, Counter())[face.person_id] += 1
    # A named person holds its faces, those that joined it after the naming too: its name
    # tags their media, and only a user's remove-face takes one out (a pass that drained it
    # would leave it with no mean, never to be found again).
    movable = [
        face
        for face in faces
        if not face.decided
        and face.person_name is None
        and face.person_id is not None
        and face.person_id in means.row
    ]
    barred = [
        {p for p, n in in_picture[face.media_id].items() if n and p != face.person_id}
        | ({face.rejected_person} if face.rejected_person else set())
        for face in movable
    ]
    wanted: list[tuple[float, uuid.UUID, StoredFace, uuid.UUID, uuid.UUID]] = []
    for face, match in zip(
        movable, means.nearest([face.embedding for face in movable], barred), strict=True
    ):
        own = face.person_id
        assert own is not None
        if (
            match is not None
            and match[0] != own
            and match[1] <= distance
            and match[1] < means.distance(face.embedding, own) - RECLUSTER_MARGIN
        ):
            wanted.append((match[1], face.face_id, face, own, match[0]))
    moves: list[tuple[StoredFace, uuid.UUID]] = []
    for _, _, face, own, to in sorted(wanted, key=lambda move: move[:2]):
        present_now = in_picture[face.media_id]
        if present_now[to]:  # another face of the picture went there first
            continue
        present_now[own] -= 1
        present_now[to] += 1
        moves.append((face, to))
    return moves
