//! The batch script: one Lua script per batch that checks the stored checkpoint against
//! the one the batch was read from (the fence), makes the batch's writes and stores the
//! new checkpoint, atomically (Redis runs a script with nothing in between).
//!
//! It must not decide what to write: that is the projection's; nor retry: that is the
//! supervise loop's.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use strata_core::Position;

use super::projection::Op;

/// KEYS[1] is the checkpoint; ARGV[1] the checkpoint the batch was read from, ARGV[2]
/// the new one, then the writes (an op code and its arguments each). Returns the stored
/// checkpoint: the new one when the batch was applied, else the one found.
///
/// NOTE: the op codes are checked before any write, since Redis does not undo the
/// writes of a script that fails halfway; an op that fails on its own (a key of another
/// type, which only a foreign writer could make) would leave the writes before it.
const SCRIPT: &str = r"
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if stored ~= tonumber(ARGV[1]) then
  return stored
end
local arity = { H = 3, I = 3, Z = 2, S = 2, D = 1, X = 2 }
local i = 3
while i <= #ARGV do
  local n = arity[ARGV[i]]
  if n == nil then
    return redis.error_reply('strata: unknown op ' .. tostring(ARGV[i]))
  end
  i = i + 1 + n
end
if i ~= #ARGV + 1 then
  return redis.error_reply('strata: truncated op list')
end
i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'H' then
    redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  elseif op == 'I' then
    redis.call('HINCRBY', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  elseif op == 'Z' then
    redis.call('ZADD', ARGV[i + 1], 0, ARGV[i + 2])
  elseif op == 'S' then
    redis.call('SET', ARGV[i + 1], ARGV[i + 2])
  elseif op == 'X' then
    redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('DEL', ARGV[i + 1])
  end
  i = i + 1 + arity[op]
end
redis.call('SET', KEYS[1], ARGV[2])
return tonumber(ARGV[2])
";

static BATCH: LazyLock<redis::Script> = LazyLock::new(|| {
    // The arities above and the op codes must agree.
    debug_assert!(
        [
            Op::HashSet,
            Op::HashIncrement,
            Op::SortedAdd,
            Op::Set,
            Op::Delete,
            Op::HashDelete
        ]
        .iter()
        .all(|op| SCRIPT.contains(&format!("{} = ", op.code())))
    );
    redis::Script::new(SCRIPT)
});

/// Runs the batch: `args` (op codes and arguments) and `to` as the checkpoint, if the
/// stored checkpoint is still `from`. Returns the stored checkpoint afterwards: `to` if
/// the batch was applied (or had been, by an earlier attempt whose answer was lost).
pub(crate) async fn commit(
    conn: &mut ConnectionManager,
    checkpoint_key: &str,
    from: Position,
    to: Position,
    args: &[String],
) -> redis::RedisResult<Position> {
    let stored: u64 = BATCH
        .key(checkpoint_key)
        .arg(from.0)
        .arg(to.0)
        .arg(args)
        .invoke_async(conn)
        .await?;
    Ok(Position(stored))
}
