-- A PATCH holds its upload by a lease, renewed while bytes arrive, instead of a row lock in a
-- transaction open for the whole request: that kept one database connection per upload in
-- progress, and a handful of slow clients took the whole pool.
ALTER TABLE tus_uploads
    ADD COLUMN writer        uuid,         -- the PATCH writing to it now, if any
    ADD COLUMN writing_until timestamptz;  -- the writer's lease; past it, another may take over
