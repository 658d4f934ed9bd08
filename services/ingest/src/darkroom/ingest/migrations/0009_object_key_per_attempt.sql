-- Each upload attempt of a file writes its bytes to a key of its own, and the file keeps the key
-- of the attempt that finished it: with one key per file, an attempt given up while it ran
-- (stalled, then woken) could overwrite the bytes of the attempt after it, and the file's
-- SHA-256 would no longer describe its object. The first attempt keeps the key every attempt
-- had before (<project>/<file>/original), so bytes stored before this keep theirs.
ALTER TABLE files ADD COLUMN object_key text;
UPDATE files SET object_key = project_id || '/' || id || '/original' WHERE status = 'uploaded';
ALTER TABLE files ADD CONSTRAINT files_uploaded_has_key
    CHECK (status <> 'uploaded' OR object_key IS NOT NULL);

ALTER TABLE tus_uploads ADD COLUMN object_key text;
UPDATE tus_uploads t SET object_key = f.project_id || '/' || f.id || '/original'
    FROM files f WHERE f.id = t.file_id;
ALTER TABLE tus_uploads ALTER COLUMN object_key SET NOT NULL;

-- During a rolling update, gateways from before this write rows without a key, their bytes at
-- the one key they know: the first attempt's. Drop these once no such gateway runs.
CREATE FUNCTION files_key_of_old_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'uploaded' AND NEW.object_key IS NULL THEN
        NEW.object_key := NEW.project_id || '/' || NEW.id || '/original';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER files_key_of_old_gateways BEFORE INSERT OR UPDATE ON files
    FOR EACH ROW EXECUTE FUNCTION files_key_of_old_gateways();

CREATE FUNCTION tus_key_of_old_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.object_key IS NULL THEN
        NEW.object_key := (SELECT project_id FROM files WHERE id = NEW.file_id)
            || '/' || NEW.file_id || '/original';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tus_key_of_old_gateways BEFORE INSERT ON tus_uploads
    FOR EACH ROW EXECUTE FUNCTION tus_key_of_old_gateways();
