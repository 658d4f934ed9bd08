-- What each processing step last said of each medium, and when a session finished them all.
CREATE TABLE media_steps (
    media_id     uuid        NOT NULL REFERENCES files,
    step         text        NOT NULL CHECK (step IN ('metadata', 'duplicates', 'tags')),
    outcome      text        NOT NULL CHECK (outcome IN ('ok', 'failed')),
    reason_code  text,
    reason       text,
    result       jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, step)
);
ALTER TABLE sessions ADD COLUMN processed_at timestamptz;
