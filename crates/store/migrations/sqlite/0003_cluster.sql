-- The cluster's shared state: the nodes (each heart-beating its load) and which node owns
-- each live class. The same tables as migrations/postgres: keep them in step.
CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    public_url   TEXT NOT NULL,
    -- A random id per process: a second process claiming a live node's id is refused.
    instance     TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    pupils       INTEGER NOT NULL DEFAULT 0,
    classes      INTEGER NOT NULL DEFAULT 0,
    cpu_permille INTEGER NOT NULL DEFAULT 0,
    kbps_out     INTEGER NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    -- HMAC of the registration (id, URL, instance, heartbeat) with the cluster key.
    signature    TEXT NOT NULL,
    draining     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE placements (
    class_id  TEXT PRIMARY KEY,
    node_id   TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    -- Bumped at each move to another node.
    epoch     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX placements_node ON placements (node_id);
-- A live class's hub state (hands, floor, lock, layout, latest chat: JSON), written by its
-- node as it changes, read by the node that takes the class over.
CREATE TABLE class_live_state (
    class_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
