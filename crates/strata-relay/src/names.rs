//! How streams, categories and event types become NATS subjects, AMQP routing keys and
//! SNS message group ids.
//! It owns that mapping (documented in docs/relays.md); it must not do any I/O.
//!
//! Both brokers split names at `.` and give `*`, `>` and `#` meaning, so each part of a
//! name is turned into a *token*: the bytes `A-Z a-z 0-9 - _` stay, every other byte
//! (of the UTF-8 form) becomes `~` and two upper-case hex digits, and an empty part becomes
//! a lone `~`. The mapping is one to one, so a consumer can turn a token back into the
//! name, and `order-7` stays `order-7`.

use strata_core::RecordedEvent;

/// The longest AMQP routing key (a short string).
const ROUTING_KEY_MAX: usize = 255;

/// `part` as one subject or routing-key token (see the module's doc).
pub fn subject_token(part: &str) -> String {
    if part.is_empty() {
        return "~".to_owned();
    }
    let mut out = String::with_capacity(part.len());
    for &b in part.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push('~');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The NATS subject of `event`: `<prefix>.<category>.<stream>`.
pub fn nats_subject(prefix: &str, event: &RecordedEvent) -> String {
    format!(
        "{prefix}.{}.{}",
        subject_token(event.stream.category()),
        subject_token(event.stream.as_str())
    )
}

/// The AMQP routing key of `event`: `<category>.<type>`, cut to 255 bytes (a short
/// string's limit) at a token boundary-safe point; the envelope always has the whole type.
pub fn amqp_routing_key(event: &RecordedEvent) -> String {
    let mut key = format!(
        "{}.{}",
        subject_token(event.stream.category()),
        subject_token(event.event_type.as_str())
    );
    if key.len() > ROUTING_KEY_MAX {
        // Tokens are ASCII, so any byte index is a char boundary; never end inside an
        // escape, so the cut key still reads back as a prefix of the name.
        let mut end = ROUTING_KEY_MAX;
        if let Some(tilde) = key[..end].rfind('~')
            && tilde + 3 > end
        {
            end = tilde;
        }
        key.truncate(end);
    }
    key
}

/// The longest SNS `MessageGroupId`.
const GROUP_ID_MAX: usize = 128;

/// The SNS FIFO `MessageGroupId` of `stream`: the stream's name when it is at most 128
/// printable ASCII bytes (`order-7` stays `order-7`), else its token (see the module's
/// doc), and when that is longer than 128 bytes, the token's first 111 bytes, `~` and 16
/// hex digits of a hash of the name. One stream always gets one group id; two streams
/// that share one only lose parallel delivery, never order.
pub fn sns_group_id(stream: &str) -> String {
    if stream.len() <= GROUP_ID_MAX && stream.bytes().all(|b| b.is_ascii_graphic()) {
        return stream.to_owned();
    }
    let token = subject_token(stream);
    if token.len() <= GROUP_ID_MAX {
        return token;
    }
    let mut end = GROUP_ID_MAX - 17;
    if let Some(tilde) = token[..end].rfind('~')
        && tilde + 3 > end
    {
        end = tilde;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{}~{hash:016x}", &token[..end])
}
