-- Every notification notify owes: one row per (event, channel, recipient), written with the
-- event's inbox entry; its state says how far it got. A row left 'sending' whose sender died
-- before recording the outcome is sent again, with the same message_id.

CREATE TABLE deliveries (
    delivery_id      uuid        PRIMARY KEY,
    subject_key      text        NOT NULL,  -- what it is about: "<topic>:<session id>"
    project_id       uuid,
    kind             text        NOT NULL CHECK (kind IN ('email', 'webhook')),
    recipient        text        NOT NULL,  -- an address or a URL
    template         text        NOT NULL,
    payload          jsonb       NOT NULL,  -- the event's body
    secret           text,                  -- a webhook's signing secret
    message_id       text        NOT NULL,  -- Message-ID / webhook-id, the same on every attempt
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    give_up_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subject_key, kind, recipient)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'sending');

CREATE TABLE attempts (
    delivery_id  uuid        NOT NULL REFERENCES deliveries,
    at           timestamptz NOT NULL DEFAULT now(),
    outcome      text        NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    detail       text
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- A project with a digest gathers its sessions' e-mails to a recipient into one 'digest'
-- delivery, sent when its window closes; this table keeps each (event, recipient) in at most
-- one digest, so a redelivered event adds nothing.
CREATE TABLE digest_entries (
    subject_key  text NOT NULL,
    recipient    text NOT NULL,
    delivery_id  uuid NOT NULL REFERENCES deliveries,
    PRIMARY KEY (subject_key, recipient)
);
CREATE INDEX deliveries_open_digest ON deliveries (project_id, recipient)
    WHERE template = 'digest' AND state = 'pending' AND attempts = 0;
