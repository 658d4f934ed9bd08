-- A project may gather the e-mails of the sessions finished within N minutes into one.
ALTER TABLE projects ADD COLUMN digest_minutes int CHECK (digest_minutes > 0);
