-- Which projects' faces changed since their last re-clustering: the periodic pass reads the
-- faces of those only, not every face of every project on every pass.
CREATE TABLE cluster_changes (
    project_id uuid   PRIMARY KEY,
    changes    bigint NOT NULL DEFAULT 0,  -- faces added, dropped or moved, counted
    clustered  bigint NOT NULL DEFAULT 0   -- ``changes`` when it was last re-clustered
);
INSERT INTO cluster_changes (project_id, changes) SELECT DISTINCT project_id, 1 FROM faces;
