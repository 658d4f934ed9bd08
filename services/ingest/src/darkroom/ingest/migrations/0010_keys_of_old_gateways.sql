-- The first upload attempt of a file keeps the key every attempt had before 0009
-- (<project>/<file>/original). During a rolling update, gateways from before 0009 write rows
-- without a key, their bytes at that key: these triggers record it for them. Drop them once no
-- such gateway runs.
CREATE FUNCTION files_key_of_old_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.object_key := NEW.project_id || '/' || NEW.id || '/original';
    RETURN NEW;
END $$;
CREATE TRIGGER files_key_of_old_gateways BEFORE INSERT OR UPDATE ON files
    FOR EACH ROW WHEN (NEW.status = 'uploaded' AND NEW.object_key IS NULL)
    EXECUTE FUNCTION files_key_of_old_gateways();

CREATE FUNCTION tus_key_of_old_gateways() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.object_key := (SELECT project_id FROM files WHERE id = NEW.file_id)
        || '/' || NEW.file_id || '/original';
    RETURN NEW;
END $$;
CREATE TRIGGER tus_key_of_old_gateways BEFORE INSERT ON tus_uploads
    FOR EACH ROW WHEN (NEW.object_key IS NULL) EXECUTE FUNCTION tus_key_of_old_gateways();
