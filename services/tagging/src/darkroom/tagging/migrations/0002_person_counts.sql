-- A person's face count kept beside its mean, so that a new face moves the mean in one
-- statement instead of a read of all the person's faces.

ALTER TABLE persons ADD COLUMN face_count integer NOT NULL DEFAULT 0;
UPDATE persons p SET face_count = (SELECT count(*) FROM faces f WHERE f.person_id = p.person_id);
