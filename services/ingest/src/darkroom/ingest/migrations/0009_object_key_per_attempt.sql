-- Each upload attempt of a file writes its bytes to a key of its own, and the file keeps the
-- key of the attempt that finished it: with one key per file, an attempt given up while it ran
-- (stalled, then woken) could overwrite the bytes of the attempt after it, and the file's
-- SHA-256 would no longer describe its object. Bytes stored before this kept their key.
ALTER TABLE files ADD COLUMN object_key text;
UPDATE files SET object_key = project_id || '/' || id || '/original' WHERE status = 'uploaded';
ALTER TABLE files ADD CONSTRAINT files_uploaded_has_key
    CHECK (status <> 'uploaded' OR object_key IS NOT NULL);

ALTER TABLE tus_uploads ADD COLUMN object_key text;
UPDATE tus_uploads t SET object_key = f.project_id || '/' || f.id || '/original'
    FROM files f WHERE f.id = t.file_id;
ALTER TABLE tus_uploads ALTER COLUMN object_key SET NOT NULL;
