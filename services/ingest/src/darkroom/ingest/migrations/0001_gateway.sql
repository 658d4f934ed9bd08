-- The gateway's own state: projects, their keys and recipients, upload sessions and files.

CREATE TABLE projects (
    id                   uuid        PRIMARY KEY,
    name                 text        NOT NULL,
    policy               text        NOT NULL CHECK (policy IN ('capture', 'library')),
    ceiling              text        NOT NULL,
    timezone             text        NOT NULL,
    max_files            int         NOT NULL CHECK (max_files > 0),
    max_bytes            bigint      NOT NULL CHECK (max_bytes > 0),
    max_image_bytes      bigint      NOT NULL CHECK (max_image_bytes > 0),
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE recipients (
    id         uuid        PRIMARY KEY,
    project_id uuid        NOT NULL REFERENCES projects ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('email', 'webhook')),
    address    text        NOT NULL,
    secret     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, kind, address)
);

-- A key is stored as the SHA-256 of its secret: the secret is shown once, at creation.
CREATE TABLE api_keys (
    id             uuid        PRIMARY KEY,
    secret_sha256  text        NOT NULL UNIQUE,
    role           text        NOT NULL CHECK (role IN ('viewer', 'uploader', 'admin')),
    platform_admin boolean     NOT NULL DEFAULT false,
    label          text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

CREATE TABLE api_key_projects (
    key_id     uuid NOT NULL REFERENCES api_keys ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects ON DELETE CASCADE,
    PRIMARY KEY (key_id, project_id)
);

CREATE TABLE sessions (
    id             uuid        PRIMARY KEY,
    project_id     uuid        NOT NULL REFERENCES projects,
    source         text        NOT NULL,
    view_name      text        NOT NULL,
    capture_date   date        NOT NULL,
    classification text        NOT NULL,
    ai_tagging     boolean     NOT NULL,
    uploader_email text,
    created_by     uuid        NOT NULL REFERENCES api_keys,
    created_at     timestamptz NOT NULL DEFAULT now(),
    submitted_at   timestamptz
);
CREATE INDEX sessions_pending ON sessions (project_id, created_at) WHERE submitted_at IS NULL;

-- A file's id is its media id; its object key is built from ids, never from its path.
CREATE TABLE files (
    id              uuid        PRIMARY KEY,
    session_id      uuid        NOT NULL REFERENCES sessions,
    project_id      uuid        NOT NULL REFERENCES projects,
    relative_path   text        NOT NULL,
    declared_size   bigint      NOT NULL CHECK (declared_size > 0),
    declared_sha256 text,
    status          text        NOT NULL CHECK (status IN
                        ('queued', 'uploading', 'uploaded', 'failed', 'skipped_duplicate')),
    received_bytes  bigint      NOT NULL DEFAULT 0,
    sha256          text,
    content_type    text,
    reason_code     text,
    reason          text,
    duplicate_of    uuid        REFERENCES files,
    attempts        int         NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (session_id, relative_path)
);
CREATE INDEX files_session ON files (session_id, status);
-- The same bytes are stored once per session, even when two copies arrive at once.
CREATE UNIQUE INDEX files_one_copy ON files (session_id, sha256) WHERE status = 'uploaded';
