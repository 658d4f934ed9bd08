"""Persons whatever the order of arrival: the corpus's faces clustered in many random orders.

    uv run python -m bench.face_orders [--orders 300] [--seed 7]

Every face dlib finds in the corpus's photos (the tagging service's picture size and
upsampling, no size floor) is embedded once. Then, for each face floor and distance of a grid,
the pictures are clustered as the tagging service does — each face joins the person whose
mean is nearest if within the distance, the faces of a picture nearest pairs first and never
two in one person (``persons.assign``), else starts a new person, and the means are
refreshed — in ``--orders`` random orders of arrival of the pictures. An order goes wrong
when one of the five people of ``corpus/faces`` is split over persons, or their person takes a
stranger's face (the other photos of the corpus show strangers, many only 36 to 60 px wide). A
setting is safe when no order goes wrong: a user's naming then holds however uploads
interleave.
"""

from __future__ import annotations

import argparse
import random
import uuid
from dataclasses import dataclass

import numpy as np

from darkroom.common.imaging import UnreadableMedia, fitted
from darkroom.common.settings import TaggingSettings
from darkroom.tagging.analysis import faces_of
from darkroom.tagging.persons import assign
from darkroom.tagging.store import Person
from tests.unit.corpus_truth import CORPUS, FACES_PEOPLE

PICTURES = {".jpg", ".jpeg", ".png", ".heic", ".heif", ".gif"}
PEOPLE = sorted(set().union(*FACES_PEOPLE.values()))
# The same bytes as another file of corpus/faces: uploaded once.
COPIES = {
    "faces/people/obama/obama.jpg",
    "faces/people/obama/obama2.jpg",
    "faces/people/biden/biden.jpg",
}


@dataclass(frozen=True)
class Face:
    path: str
    width: int  # pixels, in the picture faces are looked for in
    embedding: np.ndarray
    person: str | None  # None: a stranger


def corpus_faces(settings: TaggingSettings) -> list[Face]:
    found: list[tuple[str, int, np.ndarray]] = []
    for file in sorted(CORPUS.rglob("*")):
        relative = str(file.relative_to(CORPUS))
        if file.suffix.lower() not in PICTURES or relative.startswith("broken/"):
            continue
        if relative in COPIES:
            continue
        try:
            picture = np.asarray(fitted(file.read_bytes(), settings.face_image_size).convert("RGB"))
        except UnreadableMedia:
            continue
        for face in faces_of(picture, settings.face_upsample, 0):
            width = round((face.box[2] - face.box[0]) * picture.shape[1])
            found.append((relative, width, np.array(face.embedding)))
    alone = {  # each person's faces in photos of them alone
        person: [e for p, _, e in found if FACES_PEOPLE.get(p) == {person}] for person in PEOPLE
    }

    def who(path: str, embedding: np.ndarray) -> str | None:
        people = FACES_PEOPLE.get(path) or set()  # not in corpus/faces: a stranger
        if len(people) < 2:
            return next(iter(people), None)
        return min(  # a photo of several: the one this face is nearest to
            people, key=lambda p: min(np.linalg.norm(e - embedding) for e in alone[p])
        )

    return [Face(path, width, embedding, who(path, embedding)) for path, width, embedding in found]


def wrong(pictures: list[list[Face]], distance: float, min_face: int) -> int:
    """Named people split or joined by a stranger, with the pictures in this order."""
    members: dict[uuid.UUID, list[Face]] = {}
    persons: list[Person] = []
    placed: dict[int, uuid.UUID] = {}  # by id() of the face
    for picture in pictures:
        kept = [face for face in picture if face.width >= min_face]
        chosen = assign([(face.embedding, set()) for face in kept], persons, distance, set())
        for face, person_id in zip(kept, chosen, strict=True):
            person_id = person_id or uuid.uuid4()
            members.setdefault(person_id, []).append(face)
            placed[id(face)] = person_id
        touched = {placed[id(face)] for face in kept}
        persons = [p for p in persons if p.person_id not in touched] + [
            Person(person_id, None, np.mean([f.embedding for f in members[person_id]], axis=0))
            for person_id in touched
        ]
    errors = 0
    for person in PEOPLE:
        theirs = {
            placed.get(id(face))
            for picture in pictures
            for face in picture
            if face.person == person
        }
        errors += len(theirs) - 1  # split (or left out: None)
        errors += sum(1 for p in theirs if p is not None for f in members[p] if f.person != person)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    settings = TaggingSettings()
    faces = corpus_faces(settings)
    print(f"{len(faces)} faces, {sum(f.person is not None for f in faces)} of named people")
    shuffler = random.Random(arguments.seed)
    by_picture: dict[str, list[Face]] = {}
    for face in faces:
        by_picture.setdefault(face.path, []).append(face)
    pictures = list(by_picture.values())
    orders = [shuffler.sample(pictures, len(pictures)) for _ in range(arguments.orders)]
    print("| distance | face floor (px) | orders gone wrong |")
    print("|---|---|---|")
    for distance in (0.5, 0.55, 0.6):
        for min_face in (0, 50, 60, 80):
            bad = sum(wrong(order, distance, min_face) > 0 for order in orders)
            chosen = (distance, min_face) == (settings.face_distance, settings.face_min_pixels)
            mark = " **(the settings)**" if chosen else ""
            print(f"| {distance} | {min_face} | {bad} of {len(orders)}{mark} |")


if __name__ == "__main__":
    main()
