-- A file may declare its own classification (at most its project's ceiling).
ALTER TABLE files ADD COLUMN classification text;
