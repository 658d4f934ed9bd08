-- Every medium dedup has seen, its hashes and the duplicate group it belongs to.

CREATE TABLE media (
    media_id          uuid        PRIMARY KEY,
    project_id        uuid        NOT NULL,
    ref               jsonb       NOT NULL,  -- the MediaRef, to publish a new result later
    sha256            text        NOT NULL,
    phash             bigint,                -- unsigned 64-bit hashes stored as signed
    dhash             bigint,
    band0             int,                   -- dHash split in three (darkroom.dedup.bands)
    band1             int,
    band2             int,
    outcome           text        NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason_code       text,
    reason            text,
    group_id          uuid,
    closest_media_id  uuid,
    similarity        double precision,
    exact             boolean     NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_sha256 ON media (project_id, sha256);
CREATE INDEX media_band0 ON media (project_id, band0) WHERE band0 IS NOT NULL;
CREATE INDEX media_band1 ON media (project_id, band1) WHERE band1 IS NOT NULL;
CREATE INDEX media_band2 ON media (project_id, band2) WHERE band2 IS NOT NULL;
CREATE INDEX media_group ON media (group_id) WHERE group_id IS NOT NULL;

-- A user's review: these two are not duplicates, whatever is uploaded later.
CREATE TABLE not_duplicates (
    project_id  uuid        NOT NULL,
    media_a     uuid        NOT NULL,
    media_b     uuid        NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, media_a, media_b),
    CHECK (media_a < media_b)
);
CREATE INDEX not_duplicates_b ON not_duplicates (project_id, media_b);
