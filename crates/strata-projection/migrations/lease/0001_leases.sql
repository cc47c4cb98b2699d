-- Leases: the right of one node at a time to run a named runner (a process manager, a
-- projection into a shared read store) over state that several nodes share. A holder
-- renews its row every second or so; a row whose expiry has passed may be taken by
-- anyone, with a higher epoch. A commit guarded by a lease locks its row FOR SHARE and
-- checks holder, epoch and expiry in the same transaction (see docs/design.md).

CREATE TABLE strata_lease.leases (
    name        text        COLLATE "C" NOT NULL PRIMARY KEY,
    holder      text        NOT NULL,
    -- Raised on every grant, never lowered: a superseded holder's fence no longer matches.
    epoch       bigint      NOT NULL,
    -- On the database's clock: no node's clock decides who holds a lease.
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL
);
