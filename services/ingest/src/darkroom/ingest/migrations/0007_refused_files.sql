-- A file the policy refuses when its batch is added (a type, size or classification it does
-- not take) is kept as a failed file with its reason, so the session, the catalog and the
-- "upload had failures" e-mail name it. Nothing of it is stored; it counts towards none of the
-- session's limits and cannot be retried: the same file would be refused again. Adding its
-- path again replaces it.
ALTER TABLE files ADD COLUMN refused boolean NOT NULL DEFAULT false;
ALTER TABLE files DROP CONSTRAINT files_declared_size_check;
ALTER TABLE files ADD CONSTRAINT files_declared_size_check CHECK (declared_size > 0 OR refused);
