-- Process managers' durable state, shared by every node of one event store: per process
-- manager its checkpoint, its instances' states, its pending timeouts and its outbox of
-- commands not yet sent. One transaction per batch changes them together, guarded by
-- the process manager's lease.

CREATE TABLE strata_process.checkpoints (
    process    text        COLLATE "C" NOT NULL PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE strata_process.instances (
    process        text        COLLATE "C" NOT NULL,
    instance       text        COLLATE "C" NOT NULL,
    -- JSON; NULL once the instance is done.
    state          text,
    done           boolean     NOT NULL,
    correlation_id text,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (process, instance)
);

CREATE TABLE strata_process.timeouts (
    process  text   COLLATE "C" NOT NULL,
    instance text   COLLATE "C" NOT NULL,
    name     text   COLLATE "C" NOT NULL,
    -- Unix nanoseconds, as the process manager computed it from its events.
    deadline bigint NOT NULL,
    PRIMARY KEY (process, instance, name)
);
CREATE INDEX timeouts_deadline ON strata_process.timeouts (process, deadline);

CREATE TABLE strata_process.outbox (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    process    text        COLLATE "C" NOT NULL,
    -- Derived from the cause: a replayed reaction is not queued twice.
    command_id uuid        NOT NULL,
    instance   text        NOT NULL,
    command    text        NOT NULL,
    context    text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT outbox_command_key UNIQUE (process, command_id)
);
