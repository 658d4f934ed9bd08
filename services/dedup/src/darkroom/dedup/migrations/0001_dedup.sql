-- Every medium dedup has seen, its hashes and the duplicate group it belongs to.

CREATE TABLE media (
    media_id          uuid        PRIMARY KEY,
    project_id        uuid        NOT NULL,
    ref               jsonb       NOT NULL,  -- the MediaRef, to publish a new result later
    sha256            text        NOT NULL,
    phash             bigint,                -- unsigned 64-bit hashes stored as signed
    dhash             bigint,
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
CREATE INDEX media_group ON media (group_id) WHERE group_id IS NOT NULL;

-- The multi-index (darkroom.dedup.bands): one row per band of each medium's dHash, keyed by
-- band number and value, carrying both hashes so that a look-up reads the index alone. Rows
-- are only inserted and deleted, never updated, so the index stays all-visible.
CREATE TABLE media_bands (
    project_id  uuid    NOT NULL,
    band        bigint  NOT NULL,
    media_id    uuid    NOT NULL,
    dhash       bigint  NOT NULL,
    phash       bigint  NOT NULL
);
CREATE INDEX media_bands_lookup ON media_bands (project_id, band) INCLUDE (media_id, dhash, phash);
CREATE INDEX media_bands_media ON media_bands (media_id);

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
