//! The SQL the store runs, in one place so that the statements and the reasoning about
//! their locks can be read together. Holds no logic.

/// The channel appends notify with their last position. Only a wake-up hint: followers
/// re-read the head row, so a lost or coalesced notification costs latency, not events.
pub(crate) const HEAD_CHANNEL: &str = "strata_head";

/// The stream's version and the version of the stream's event with a given id, in one
/// snapshot: everything an append needs to decide, read without locks.
pub(crate) const APPEND_STATE: &str = "\
SELECT coalesce((SELECT version FROM strata.streams WHERE name = $1::text), 0),
       (SELECT version FROM strata.events WHERE stream = $1::text AND id = $2::uuid)";

/// The first stored event holding one of the ids (for refusing a reused id).
pub(crate) const FIRST_HOLDER: &str = "\
SELECT id, position FROM strata.events WHERE id = ANY($1::uuid[]) ORDER BY position LIMIT 1";

/// The ids, positions and recording times of a range of the stream's versions (for
/// idempotent repeats).
pub(crate) const STREAM_IDS: &str = "\
SELECT version, id, position, recorded_at FROM strata.events
 WHERE stream = $1::text AND version BETWEEN $2::bigint AND $3::bigint
 ORDER BY version";

/// The write of one append, as a single autocommitted statement.
///
/// The `UPDATE` of the head row runs first (every other part reads its result), so the
/// row lock it takes is the statement's first lock, and it is held until the implicit
/// commit at the end of the statement: positions are handed out in commit order and a
/// rolled-back append returns its positions with its update. The unique index on
/// `(stream, version)` then refuses an append whose version check raced another's; by
/// then that other append has committed (it held the head row until it did), so the
/// refusal never waits. `$2` is the stream's version before the append and `$6` the
/// number of events. It notifies [`HEAD_CHANNEL`] (spelled out here; a unit test keeps the
/// two equal); PostgreSQL delivers the notification at commit, in commit order.
pub(crate) const APPEND_WRITE: &str = "\
WITH alloc AS (
    UPDATE strata.head
       SET position = position + $6::bigint,
           recorded_at = greatest(recorded_at, clock_timestamp())
     RETURNING position - $6::bigint AS base, recorded_at
), inserted AS (
    INSERT INTO strata.events
           (position, stream, version, id, type, category, data, metadata, recorded_at)
    SELECT alloc.base + e.ord, $1::text, $2::bigint + e.ord, e.id, e.type, $7::text,
           e.data, e.metadata, alloc.recorded_at
      FROM alloc,
           unnest($3::uuid[], $4::text[], $5::bytea[], $8::bytea[])
               WITH ORDINALITY AS e(id, type, data, metadata, ord)
), stream_row AS (
    INSERT INTO strata.streams (name, version, last_position)
    SELECT $1::text, $2::bigint + $6::bigint, alloc.base + $6::bigint FROM alloc
    ON CONFLICT (name) DO UPDATE
       SET version = excluded.version, last_position = excluded.last_position
)
SELECT alloc.base, pg_notify('strata_head', (alloc.base + $6::bigint)::text)::text,
       alloc.recorded_at
  FROM alloc";

/// The last committed position.
pub(crate) const HEAD: &str = "SELECT position FROM strata.head";

/// The columns of an event row, in the order `row_to_event` reads them.
macro_rules! event_columns {
    () => {
        "position, stream, version, id, type, data, metadata, recorded_at"
    };
}

/// A page of the global log and the head, in one snapshot. The head row and the events
/// come from the same snapshot, and an append's events commit with its head update, so
/// the page is a prefix of the committed log: no event at or below the returned head can
/// appear later. The head is returned even when no event is.
pub(crate) const READ_ALL: &str = concat!(
    "SELECT h.position AS head, e.* FROM strata.head h LEFT JOIN LATERAL (
    SELECT ",
    event_columns!(),
    " FROM strata.events
     WHERE position >= $1::bigint AND position <= h.position
       AND (cardinality($2::text[]) = 0 OR category = ANY($2::text[]))
       AND (cardinality($3::text[]) = 0 OR type = ANY($3::text[]))
     ORDER BY position
     LIMIT $4::bigint
) e ON true ORDER BY e.position"
);

/// A stream's events newest first, from a version.
pub(crate) const READ_BACKWARD: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM strata.events WHERE stream = $1::text AND version <= $2::bigint
 ORDER BY version DESC LIMIT $3::bigint"
);

/// A stream's version.
pub(crate) const STREAM_VERSION: &str =
    "SELECT coalesce((SELECT version FROM strata.streams WHERE name = $1::text), 0)";

/// A page of the stream listing: names in `[$1, $3)` (the prefix's range; `$3` null when
/// it has no upper bound) after `$2`, in byte order. The primary key's index is in the
/// "C" collation, so this is one index range scan of at most `$4` entries.
pub(crate) const LIST_STREAMS: &str = "\
SELECT name, version, last_position FROM strata.streams
 WHERE name >= $1::text
   AND ($2::text IS NULL OR name > $2::text)
   AND ($3::text IS NULL OR name < $3::text)
 ORDER BY name COLLATE \"C\"
 LIMIT $4::bigint";

/// Takes the position allocator's row lock for a group commit, first thing in its
/// transaction, and holds it to the commit. Every append of every process writes the
/// head row before its events, so while a group holds it no other append can commit, and
/// what the group's decision reads next ([`GROUP_APPEND`]) is exactly the committed log.
pub(crate) const LOCK_HEAD: &str = "SELECT position FROM strata.head FOR UPDATE";

/// A whole group, decided and written by the server in one statement, in its transaction
/// right after [`LOCK_HEAD`]: its snapshot, taken once the lock is granted, is exactly the
/// committed log, and no other append can commit before this one does.
///
/// Members, one element each, in group order: `$1` stream, `$2` the exact version it
/// expects (null for `any` and `exists`), `$3` whether it needs the stream to exist, `$4`
/// its first event id, `$5` its event count, `$6` its stream's category. Events, one
/// element each, member after member: `$7` the member's 1-based ordinal, `$8` the event's
/// 1-based index in its member, `$9` id, `$10` type, `$11` data, `$12` metadata.
///
/// A member *wins* when `check_append` would write it: its exact expected version is the
/// stream's version (`current`), or, expecting `any` or `exists`, the expectation holds
/// and its first id is not in the stream already. Only winners are written: the head
/// advances by their events (not at all without winners) and is notified on
/// [`HEAD_CHANNEL`], their events take positions member after member in group order, and
/// their `streams` rows are upserted. One row answers each member, in group order:
/// whether it won, `current`, the version of its first id in the stream (looked up only
/// where `check_append` asks), the position before its first event and the recording
/// time (winners only), and, for a member that may repeat stored events (an exact
/// expected version below `current`, or its first id found), the versions, ids,
/// positions and recording times of the stored events it would repeat, from which the
/// caller tells a repeat from a conflict.
///
/// NOTE: an expected version is whatever `bigint` a caller gave, so it is only compared,
/// or incremented when below the stream's version: no member's input can make the
/// statement fail, which would fail its whole group. Each lookup is a correlated
/// subquery, so that it stays one index probe per member whatever the planner thinks of
/// the tables' sizes: the `streams` row; the first id, only when the member expects `any`
/// or `exists`; the range it would repeat, only when a repeat is possible. The events
/// join their member by ordinal, an equality.
pub(crate) const GROUP_APPEND: &str = "\
WITH member AS MATERIALIZED (
    SELECT r.ord, r.stream, r.exact, r.must_exist, r.first_id, r.n, r.category,
           coalesce((SELECT s.version FROM strata.streams s
                      WHERE s.name = r.stream COLLATE \"C\"), 0) AS current
      FROM unnest($1::text[], $2::bigint[], $3::bool[], $4::uuid[], $5::bigint[], $6::text[])
               WITH ORDINALITY AS r(stream, exact, must_exist, first_id, n, category, ord)
), found AS MATERIALIZED (
    SELECT m.*,
           (SELECT e.version FROM strata.events e
             WHERE m.exact IS NULL AND m.current > 0
               AND e.id = m.first_id AND e.stream = m.stream COLLATE \"C\") AS id_version
      FROM member m
), decided AS (
    SELECT f.*,
           CASE WHEN f.exact IS NOT NULL THEN f.exact = f.current
                ELSE f.id_version IS NULL AND (f.current > 0 OR NOT f.must_exist)
           END AS wins,
           CASE WHEN f.exact IS NULL THEN f.id_version
                WHEN f.exact < f.current THEN f.exact + 1
           END AS repeat_from
      FROM found f
), placed AS (
    SELECT d.*,
           coalesce(sum(d.n) FILTER (WHERE d.wins) OVER (ORDER BY d.ord), 0)::bigint AS through
      FROM decided d
), alloc AS (
    UPDATE strata.head h
       SET position = h.position + t.total,
           recorded_at = greatest(h.recorded_at, clock_timestamp())
      FROM (SELECT max(through) AS total FROM placed) t
     WHERE t.total > 0
    RETURNING h.position - t.total AS base, h.recorded_at,
              pg_notify('strata_head', h.position::text)::text AS notified
), inserted AS (
    INSERT INTO strata.events
           (position, stream, version, id, type, category, data, metadata, recorded_at)
    SELECT a.base + p.through - p.n + e.i, p.stream, p.current + e.i, e.id, e.type,
           p.category, e.data, e.metadata, a.recorded_at
      FROM alloc a
     CROSS JOIN unnest($7::bigint[], $8::bigint[], $9::uuid[], $10::text[], $11::bytea[],
                       $12::bytea[]) AS e(member, i, id, type, data, metadata)
      JOIN placed p ON p.ord = e.member
     WHERE p.wins
), stream_rows AS (
    INSERT INTO strata.streams (name, version, last_position)
    SELECT p.stream, p.current + p.n, a.base + p.through
      FROM alloc a, placed p
     WHERE p.wins
    ON CONFLICT (name) DO UPDATE
       SET version = excluded.version, last_position = excluded.last_position
)
SELECT p.wins, p.current, p.id_version,
       CASE WHEN p.wins THEN a.base + p.through - p.n END, a.recorded_at,
       r.versions, r.ids, r.positions, r.recorded
  FROM placed p
  LEFT JOIN alloc a ON true
  LEFT JOIN LATERAL (
      SELECT array_agg(e.version ORDER BY e.version) AS versions,
             array_agg(e.id ORDER BY e.version) AS ids,
             array_agg(e.position ORDER BY e.version) AS positions,
             array_agg(e.recorded_at ORDER BY e.version) AS recorded
        FROM strata.events e
       WHERE NOT p.wins AND e.stream = p.stream COLLATE \"C\"
         AND e.version BETWEEN p.repeat_from
                           AND p.repeat_from + least(p.n - 1, p.current - p.repeat_from)
  ) r ON true
 ORDER BY p.ord";

/// Many stream reads in one statement: for each `($1[i], $2[i], $3[i])`, the stream's
/// events from that version on, oldest first, at most that many; each row led by the
/// read's 1-based ordinal.
pub(crate) const READ_FORWARD_MANY: &str = concat!(
    "SELECT r.ord, e.* FROM unnest($1::text[], $2::bigint[], $3::bigint[])
       WITH ORDINALITY AS r(stream, from_version, max_events, ord)
 CROSS JOIN LATERAL (
    SELECT ",
    event_columns!(),
    " FROM strata.events
     WHERE stream = r.stream COLLATE \"C\" AND version >= r.from_version
     ORDER BY version LIMIT r.max_events
) e ORDER BY r.ord, e.version"
);

/// Many lookups of one event of a stream by id in one statement, each row led by the
/// lookup's 1-based ordinal.
pub(crate) const EVENTS_BY_ID_MANY: &str = concat!(
    "SELECT r.ord, e.* FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS r(stream, id, ord)
 CROSS JOIN LATERAL (
    SELECT ",
    event_columns!(),
    " FROM strata.events WHERE id = r.id AND stream = r.stream COLLATE \"C\"
) e"
);
