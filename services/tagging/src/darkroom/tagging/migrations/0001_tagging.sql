-- Every medium tagging has seen, its faces, and the persons of each project.

CREATE TABLE media (
    media_id     uuid        PRIMARY KEY,
    project_id   uuid        NOT NULL,
    ref          jsonb       NOT NULL,  -- the MediaRef, to publish new tags later
    tags         jsonb       NOT NULL,  -- folder, session and safety tags: [{name, source}]
    outcome      text        NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason_code  text,
    reason       text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_project ON media (project_id);

CREATE TABLE persons (
    person_id   uuid        PRIMARY KEY,
    project_id  uuid        NOT NULL,
    name        text,                   -- a user's; never changed by clustering
    centroid    float8[]    NOT NULL,   -- the mean embedding of its faces
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persons_project ON persons (project_id);

CREATE TABLE faces (
    face_id          uuid        PRIMARY KEY,
    media_id         uuid        NOT NULL REFERENCES media ON DELETE CASCADE,
    project_id       uuid        NOT NULL,
    box              float8[]    NOT NULL,
    embedding        float8[]    NOT NULL,
    person_id        uuid        REFERENCES persons ON DELETE SET NULL,
    decided          boolean     NOT NULL DEFAULT false,  -- placed by a user: clustering keeps it
    rejected_person  uuid                                -- a user said it is not this person
);
CREATE INDEX faces_media ON faces (media_id);
CREATE INDEX faces_person ON faces (person_id);
CREATE INDEX faces_project ON faces (project_id);
