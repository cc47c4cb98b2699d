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

/// Takes the position allocator's row lock for a group commit that lost a race, first
/// thing in its transaction, and holds it to the commit. Every append of every process writes the
/// head row before its events, so while a group holds it no other append can commit, and
/// what the group's decision reads next is exactly the committed log.
pub(crate) const LOCK_HEAD: &str = "SELECT position FROM strata.head FOR UPDATE";

/// The decision input of every append of a group, read in one snapshot (with no lock, or
/// under the head row's lock after [`LOCK_HEAD`]): for each `($1[i], $2[i])`, the
/// stream's version and the version of the stream's event with that id, in the order
/// given. Both are scalar subqueries, run as one index probe per append whatever the
/// table statistics say (a join may be planned as a scan of the whole table).
pub(crate) const GROUP_STATE: &str = "\
SELECT coalesce((SELECT s.version FROM strata.streams s
                  WHERE s.name = r.stream COLLATE \"C\"), 0),
       (SELECT e.version FROM strata.events e
         WHERE e.stream = r.stream COLLATE \"C\" AND e.id = r.first_id)
  FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS r(stream, first_id, ord)
 ORDER BY r.ord";

/// The write of a whole group: allocate `$1` positions, insert every event (`$2..$8`, one
/// element per event, in position order, so event `i` gets position `base + i`), set each
/// stream's version and last position (`$9..$11`: its name, its new version and the
/// ordinal of its last event), and notify [`HEAD_CHANNEL`] with the new head; answers the
/// first position's predecessor and the events' recording time. `$12` is each member's
/// stream version the write was decided against.
///
/// Sent on its own (autocommitted), as [`APPEND_WRITE`] is: the `UPDATE` of the head row
/// runs first and holds it until the commit, so positions follow commit order. The
/// decisions were made without the lock (from [`GROUP_STATE`], or from the versions that
/// appends expecting an exact version name), and each member writes the versions right
/// after the one it was decided against. So the statement is refused whole, and nothing
/// written, if any member's stream is not at that version now:
/// - past it: an append wrote the version after it (versions have no gaps), and the
///   unique index on `(stream, version)` refuses the insert;
/// - short of it: the stream has no event at that version, and the guard fails the
///   statement with the error [`GROUP_BEHIND`] names;
/// - an append that stored one of its ids since makes the unique index on `id` refuse it.
///
/// The group is then decided again in a transaction under [`LOCK_HEAD`], where this
/// statement runs after the state was read under the lock (and the guard always holds).
/// The guard looks each member's event up with a scalar subquery, which the planner runs
/// as one index probe per member: a `NOT EXISTS` would be planned as an anti-join, which
/// a plan made from a young table's statistics runs as a scan of the whole table.
/// The guard reads in the statement's snapshot, taken before it waited for the head row:
/// an append committed while it waited can only make it fail where it need not (and the
/// locked retry then decides right), never pass where it must not, as events are never
/// deleted.
pub(crate) const GROUP_WRITE: &str = "\
WITH alloc AS (
    UPDATE strata.head
       SET position = position + $1::bigint,
           recorded_at = greatest(recorded_at, clock_timestamp())
     RETURNING position - $1::bigint AS base, recorded_at
), inserted AS (
    INSERT INTO strata.events
           (position, stream, version, id, type, category, data, metadata, recorded_at)
    SELECT alloc.base + e.ord, e.stream, e.version, e.id, e.type, e.category,
           e.data, e.metadata, alloc.recorded_at
      FROM alloc,
           unnest($2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                  $7::bytea[], $8::bytea[])
               WITH ORDINALITY AS e(stream, version, id, type, category, data, metadata, ord)
), stream_rows AS (
    INSERT INTO strata.streams (name, version, last_position)
    SELECT s.name, s.version, alloc.base + s.last_ord
      FROM alloc, unnest($9::text[], $10::bigint[], $11::bigint[]) AS s(name, version, last_ord)
    ON CONFLICT (name) DO UPDATE
       SET version = excluded.version, last_position = excluded.last_position
), behind AS (
    SELECT count(*) AS streams
      FROM unnest($9::text[], $12::bigint[]) AS m(name, decided)
     WHERE m.decided > 0
       AND (SELECT e.position FROM strata.events e
             WHERE e.stream = m.name COLLATE \"C\" AND e.version = m.decided) IS NULL
)
SELECT alloc.base, pg_notify('strata_head', (alloc.base + $1::bigint)::text)::text,
       alloc.recorded_at,
       CASE WHEN behind.streams > 0
            THEN ('strata: ' || behind.streams || ' streams are behind the version decided')::bigint
       END
  FROM alloc, behind";

/// The text of the error the guard of [`GROUP_WRITE`] raises (a failed cast, SQLSTATE
/// 22P02): a member's stream is short of the version its write was decided against.
pub(crate) const GROUP_BEHIND: &str = "streams are behind the version decided";

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
