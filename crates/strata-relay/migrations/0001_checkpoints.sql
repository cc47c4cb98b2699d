-- Each relay's checkpoint, shared by the servers on one database: the last position its
-- broker confirmed. Written only by the holder of the relay's lease, fenced in the same
-- transaction.
CREATE TABLE strata_relay.checkpoints (
    name       text        NOT NULL PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
