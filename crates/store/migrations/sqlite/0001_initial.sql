-- Ardoise's durable state (SQLite). The same tables as migrations/postgres: keep them in step.
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers.

CREATE TABLE departements (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);

CREATE TABLE schools (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    departement INTEGER NOT NULL REFERENCES departements(id),
    name        TEXT NOT NULL,
    UNIQUE (departement, name)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'teacher')),
    -- An admin's scope: a département, a school, or neither (every département).
    departement   INTEGER REFERENCES departements(id),
    school        INTEGER REFERENCES schools(id),
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE teacher_schools (
    teacher INTEGER NOT NULL REFERENCES users(id),
    school  INTEGER NOT NULL REFERENCES schools(id),
    PRIMARY KEY (teacher, school)
);

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE classes (
    id               TEXT PRIMARY KEY,
    school           INTEGER REFERENCES schools(id),
    teacher          INTEGER REFERENCES users(id),
    title            TEXT NOT NULL,
    code             TEXT NOT NULL UNIQUE,
    code_expires_at  INTEGER,
    waiting_room     INTEGER NOT NULL DEFAULT 0,
    autolock         INTEGER NOT NULL DEFAULT 0,
    private_messages INTEGER NOT NULL DEFAULT 0,
    recording        INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    ended_at         INTEGER
);
CREATE INDEX classes_teacher ON classes (teacher);
CREATE INDEX classes_school ON classes (school);

-- The weekly timetable: one row per slot.
CREATE TABLE class_slots (
    class      TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    weekday    INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_min  INTEGER NOT NULL CHECK (start_min BETWEEN 0 AND 1439),
    minutes    INTEGER NOT NULL CHECK (minutes BETWEEN 1 AND 600),
    PRIMARY KEY (class, weekday, start_min)
);

-- A class session: from the teacher's start to its end.
CREATE TABLE class_sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    class      TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX class_sessions_class ON class_sessions (class, started_at);

-- Attendance of a pupil (a class-scoped pseudonym: the token subject) in one session,
-- merged across reconnections.
CREATE TABLE attendance (
    session    INTEGER NOT NULL REFERENCES class_sessions(id) ON DELETE CASCADE,
    pupil      TEXT NOT NULL,
    name       TEXT NOT NULL,
    joined_at  INTEGER NOT NULL,
    left_at    INTEGER,
    transport  TEXT,
    quality    TEXT,
    PRIMARY KEY (session, pupil)
);
CREATE INDEX attendance_joined ON attendance (joined_at);
CREATE INDEX attendance_pupil ON attendance (pupil);

-- Append-only: who did what.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE revoked_subjects (
    subject TEXT PRIMARY KEY,
    until   INTEGER NOT NULL
);

CREATE TABLE role_versions (
    role    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);

-- Token signing keys; the newest signs, the older ones still verify until retired.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
