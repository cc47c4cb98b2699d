-- The event log: one row per event, one row per stream, and the single row that
-- allocates global positions. Everything lives in the `strata` schema so that the
-- database can hold other applications' tables.

CREATE TABLE strata.events (
    -- Global position: 1-based, gapless, in commit order (see the allocator below).
    position    bigint      NOT NULL PRIMARY KEY,
    -- Names compare bytewise ("C"), as Rust's `str` does, whatever the database's locale.
    stream      text        COLLATE "C" NOT NULL,
    version     bigint      NOT NULL,
    id          uuid        NOT NULL,
    type        text        COLLATE "C" NOT NULL,
    -- The part of the stream name before its first '-', for category filters.
    category    text        COLLATE "C" NOT NULL,
    data        bytea       NOT NULL,
    metadata    bytea       NOT NULL,
    recorded_at timestamptz NOT NULL,
    -- The arbiter of optimistic concurrency: exactly one append wins each version.
    CONSTRAINT events_stream_version_key UNIQUE (stream, version),
    -- An event id is stored once in the whole log (idempotent repeats are recognised
    -- before writing); durable across restarts.
    CONSTRAINT events_id_key UNIQUE (id)
);

-- One row per stream: its version and last position, for version checks and listings.
CREATE TABLE strata.streams (
    name          text   COLLATE "C" NOT NULL PRIMARY KEY,
    version       bigint NOT NULL,
    last_position bigint NOT NULL
);

-- The position allocator: one row, updated by every append in the statement that
-- inserts its events, so its row lock is held from allocation to commit.
-- `recorded_at` keeps recording times non-decreasing in position order even if the
-- server's clock steps back.
CREATE TABLE strata.head (
    singleton   boolean     NOT NULL PRIMARY KEY DEFAULT true CHECK (singleton),
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL
);

INSERT INTO strata.head (singleton, position, recorded_at) VALUES (true, 0, '-infinity');
