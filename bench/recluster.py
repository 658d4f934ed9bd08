"""Re-clustering a large project: the tagging service's pass over every face, against the bare
arithmetic it cannot avoid, in the same run.

    uv run python -m bench.recluster [--persons 1000 2000 4000] [--faces-each 5]

A synthetic project: ``--persons`` people, each ``--faces-each`` faces scattered around a point
of the 128-d sphere (dlib's embeddings are unit-length too), every face already with its
person, as after the faces arrived. The pass (``persons.regrouped``: no user decisions, one
face a picture) is timed in CPU seconds against the baseline of one matrix product of every
face with every person's mean (numpy, BLAS), the least any comparison of all faces with all
persons costs.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import numpy as np

from darkroom.tagging.persons import regrouped
from darkroom.tagging.store import Person, StoredFace


def project(persons: int, faces_each: int, seed: int = 1) -> tuple[list[Person], list[StoredFace]]:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(persons, 128))
    points /= np.linalg.norm(points, axis=1)[:, None]
    everyone, faces = [], []
    for index, point in enumerate(points):
        person_id = uuid.UUID(int=index + 1)
        embeddings = point + rng.normal(scale=0.02, size=(faces_each, 128))
        everyone.append(Person(person_id, None, embeddings.mean(axis=0)))
        faces += [
            StoredFace(
                face_id=uuid.uuid4(),
                media_id=uuid.uuid4(),
                box=(0.0, 0.0, 0.1, 0.1),
                embedding=embedding,
                person_id=person_id,
                person_name=None,
                decided=False,
                rejected_person=None,
            )
            for embedding in embeddings
        ]
    return everyone, faces


def cpu_seconds(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--faces-each", type=int, default=5)
    args = parser.parse_args()
    print("| persons | faces | re-clustering pass, CPU-s | bare matrix product, CPU-s | ratio |")
    print("|---|---|---|---|---|")
    for persons in args.persons:
        everyone, faces = project(persons, args.faces_each)
        means = np.stack([p.centroid for p in everyone])
        embeddings = np.stack([f.embedding for f in faces])
        bare = cpu_seconds(lambda: embeddings @ means.T)  # noqa: B023 - called at once
        passed = cpu_seconds(lambda: regrouped(faces, everyone, 0.55))  # noqa: B023
        print(f"| {persons} | {len(faces)} | {passed:.2f} | {bare:.2f} | {passed / bare:.1f} |")


if __name__ == "__main__":
    main()
