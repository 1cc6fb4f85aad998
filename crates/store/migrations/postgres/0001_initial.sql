-- Ardoise's durable state (PostgreSQL). The same tables as migrations/sqlite: keep them in step.
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers.

CREATE TABLE departements (
    id      BIGSERIAL PRIMARY KEY,
    code    TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL
);

CREATE TABLE schools (
    id          BIGSERIAL PRIMARY KEY,
    departement BIGINT NOT NULL REFERENCES departements(id),
    name        TEXT NOT NULL,
    UNIQUE (departement, name)
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'teacher')),
    -- An admin's scope: a département, a school, or neither (every département).
    departement   BIGINT REFERENCES departements(id),
    school        BIGINT REFERENCES schools(id),
    created_at    BIGINT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE teacher_schools (
    teacher BIGINT NOT NULL REFERENCES users(id),
    school  BIGINT NOT NULL REFERENCES schools(id),
    PRIMARY KEY (teacher, school)
);

CREATE TABLE login_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE classes (
    id               TEXT PRIMARY KEY,
    school           BIGINT REFERENCES schools(id),
    teacher          BIGINT REFERENCES users(id),
    title            TEXT NOT NULL,
    code             TEXT NOT NULL UNIQUE,
    code_expires_at  BIGINT,
    waiting_room     BIGINT NOT NULL DEFAULT 0,
    autolock         BIGINT NOT NULL DEFAULT 0,
    private_messages BIGINT NOT NULL DEFAULT 0,
    recording        BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    ended_at         BIGINT
);
CREATE INDEX classes_teacher ON classes (teacher);
CREATE INDEX classes_school ON classes (school);

-- The weekly timetable: one row per slot.
CREATE TABLE class_slots (
    class      TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    weekday    BIGINT NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_min  BIGINT NOT NULL CHECK (start_min BETWEEN 0 AND 1439),
    minutes    BIGINT NOT NULL CHECK (minutes BETWEEN 1 AND 600),
    PRIMARY KEY (class, weekday, start_min)
);

-- A class session: from the teacher's start to its end.
CREATE TABLE class_sessions (
    id         BIGSERIAL PRIMARY KEY,
    class      TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX class_sessions_class ON class_sessions (class, started_at);

-- Attendance of a pupil (a class-scoped pseudonym: the token subject) in one session,
-- merged across reconnections.
CREATE TABLE attendance (
    session    BIGINT NOT NULL REFERENCES class_sessions(id) ON DELETE CASCADE,
    pupil      TEXT NOT NULL,
    name       TEXT NOT NULL,
    joined_at  BIGINT NOT NULL,
    left_at    BIGINT,
    transport  TEXT,
    quality    TEXT,
    PRIMARY KEY (session, pupil)
);
CREATE INDEX attendance_joined ON attendance (joined_at);
CREATE INDEX attendance_pupil ON attendance (pupil);

-- Append-only: who did what.
CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at);

CREATE TABLE revoked_subjects (
    subject TEXT PRIMARY KEY,
    until   BIGINT NOT NULL
);

CREATE TABLE role_versions (
    role    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);

-- Token signing keys; the newest signs, the older ones still verify until retired.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
