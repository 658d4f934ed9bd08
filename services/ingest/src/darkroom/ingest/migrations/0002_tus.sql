-- Resumable (tus 1.0) uploads in progress: bytes go to an S3 multipart upload in whole parts;
-- the bytes since the last whole part wait in a small S3 object (the tail), never on disk.

CREATE TABLE tus_uploads (
    id           uuid        PRIMARY KEY,
    file_id      uuid        NOT NULL UNIQUE REFERENCES files ON DELETE CASCADE,
    session_id   uuid        NOT NULL REFERENCES sessions,
    length       bigint      NOT NULL CHECK (length > 0),
    received     bigint      NOT NULL DEFAULT 0,
    multipart_id text,
    parts        jsonb       NOT NULL DEFAULT '[]',
    tail_key     text,
    tail_size    int         NOT NULL DEFAULT 0,
    family       text,        -- what the head was judged to be; NULL until it was
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tus_uploads_expiry ON tus_uploads (expires_at);
