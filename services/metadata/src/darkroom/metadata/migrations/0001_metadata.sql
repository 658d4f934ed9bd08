-- What the metadata service read from each medium (the latest result per medium).

CREATE TABLE media_metadata (
    media_id       uuid        PRIMARY KEY,
    project_id     uuid        NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason_code    text,
    reason         text,
    captured_at    timestamptz,
    utc_offset     interval,
    offset_source  text,
    make           text,
    model          text,
    lens           text,
    orientation    smallint,
    width          int,
    height         int,
    latitude       double precision,
    longitude      double precision,
    altitude       double precision,
    country_code   text,
    country        text,
    region         text,
    duration_s     double precision,
    thumbnail_key  text,
    preview_key    text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_metadata_project ON media_metadata (project_id);
