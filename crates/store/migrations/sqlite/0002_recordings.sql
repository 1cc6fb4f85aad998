-- Recordings of classes (the files stay in the data directory; this is what describes them).
-- The same table as migrations/postgres: keep them in step.
CREATE TABLE recordings (
    class        TEXT NOT NULL,
    id           TEXT NOT NULL,
    title        TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    -- recording, ready, interrupted (the server stopped meanwhile), failed
    state        TEXT NOT NULL,
    published    INTEGER NOT NULL DEFAULT 1,
    downloadable INTEGER NOT NULL DEFAULT 0,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (class, id)
);
CREATE INDEX recordings_expiry ON recordings (expires_at);
