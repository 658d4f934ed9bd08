-- A named person left with no faces joins no new face (store.persons asks face_count > 0);
-- before this, one emptied by a user's removals kept its last count and mean.
UPDATE persons p SET face_count = 0
WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.person_id);
