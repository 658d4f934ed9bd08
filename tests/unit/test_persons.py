"""How faces are placed with persons, before any database: one picture's faces, and the
periodic re-clustering. Embeddings here are points on a line (dlib's are 128-d)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from darkroom.tagging import persons as placing
from darkroom.tagging.persons import RECLUSTER_MARGIN, Means, assign, regrouped
from darkroom.tagging.store import Person, StoredFace

P, Q, R = (uuid.UUID(int=n) for n in (1, 2, 3))


def at(x: float) -> np.ndarray:
    return np.array([x, 0.0])


def person(person_id: uuid.UUID, x: float) -> Person:
    return Person(person_id, None, at(x))


def face(
    x: float,
    person_id: uuid.UUID | None,
    picture: int,
    *,
    decided: bool = False,
    name: str | None = None,
) -> StoredFace:
    return StoredFace(
        face_id=uuid.uuid4(),
        media_id=uuid.UUID(int=1000 + picture),
        box=(0.0, 0.0, 0.1, 0.1),
        embedding=at(x),
        person_id=person_id,
        person_name=name,
        decided=decided,
        rejected_person=None,
    )


def test_two_faces_near_one_person_go_to_it_once_the_nearer_first() -> None:
    persons = [person(P, 0.0)]
    far, near = (at(0.4), set[uuid.UUID]()), (at(0.1), set[uuid.UUID]())
    assert assign([far, near], persons, 0.55, set()) == [None, P]


def test_a_face_joins_no_person_taken_barred_or_too_far() -> None:
    persons = [person(P, 0.0), person(Q, 0.3)]
    assert assign([(at(0.0), set())], persons, 0.55, {P}) == [Q]  # P is already in the picture
    assert assign([(at(0.0), {P})], persons, 0.55, set()) == [Q]  # a user took it from P
    assert assign([(at(2.0), set())], persons, 0.55, set()) == [None]


def test_each_face_of_a_picture_finds_its_own_person() -> None:
    persons = [person(P, 0.0), person(Q, 1.0)]
    faces = [(at(0.95), set[uuid.UUID]()), (at(0.05), set[uuid.UUID]())]
    assert assign(faces, persons, 0.55, set()) == [Q, P]


def test_re_clustering_moves_a_face_clearly_nearer_another_person() -> None:
    persons = [person(P, 0.0), person(Q, 1.0)]
    stray = face(0.9, P, picture=1)
    [(moved, to)] = regrouped([stray, face(0.0, P, picture=2)], persons, 0.55)
    assert (moved.face_id, to) == (stray.face_id, Q)
    margin = face(0.5 + RECLUSTER_MARGIN / 4, P, picture=3)  # nearer Q, but not clearly
    assert regrouped([margin], persons, 0.55) == []
    assert regrouped([face(0.9, P, picture=1, decided=True)], persons, 0.55) == []


def test_re_clustering_never_moves_a_face_out_of_a_named_person() -> None:
    """A named person holds its faces, even one no user placed that is now clearly nearer
    another person (only a user's remove-face takes it out); faces may still join it."""
    persons = [Person(P, "Ann", at(0.0)), person(Q, 1.0)]
    assert regrouped([face(0.9, P, picture=1, name="Ann")], persons, 0.55) == []
    stray = face(0.1, Q, picture=2)
    [(moved, to)] = regrouped([stray], persons, 0.55)
    assert (moved.face_id, to) == (stray.face_id, P)


def test_re_clustering_never_puts_two_faces_of_a_picture_in_one_person() -> None:
    """Two faces of one picture both nearer Q: the nearer goes, the other stays; and no face
    goes to a person already in its picture."""
    persons = [person(P, 0.0), person(Q, 1.0), person(R, 5.0)]
    one, two = face(0.8, P, picture=1), face(0.95, R, picture=1)
    moves = regrouped([one, two], persons, 0.55)
    assert [(f.face_id, to) for f, to in moves] == [(two.face_id, Q)]
    beside_q = face(0.9, P, picture=2)
    assert regrouped([beside_q, face(1.0, Q, picture=2)], persons, 0.55) == []


@pytest.mark.parametrize("block", [1 << 22, 7])  # all faces at once; a few at a time
def test_the_nearest_person_is_the_one_each_face_is_nearest_to(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """The persons of a project looked up at once (one matrix product, in blocks of faces)
    give, face by face, the person a plain search over every person gives, at its distance."""
    monkeypatch.setattr(placing, "_BLOCK", block)
    rng = np.random.default_rng(5)
    persons = [Person(uuid.UUID(int=n), None, rng.normal(size=128)) for n in range(1, 41)]
    embeddings = list(rng.normal(size=(60, 128)))
    barred = [
        {p.person_id for p in persons if rng.random() < share}
        for share in [0.0, 0.5, 1.0] * 20  # none, half, every person barred
    ]
    found = Means(persons).nearest(embeddings, barred)
    for embedding, bars, match in zip(embeddings, barred, found, strict=True):
        allowed = [(float(np.linalg.norm(embedding - p.centroid)), p.person_id) for p in persons]
        allowed = [(d, p) for d, p in allowed if p not in bars]
        if not allowed:
            assert match is None
            continue
        distance, person_id = min(allowed)
        assert match == (person_id, pytest.approx(distance, abs=1e-12))
    assert Means([]).nearest(embeddings[:2], [set(), set()]) == [None, None]
