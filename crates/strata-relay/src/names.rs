//! How streams, categories and event types become NATS subjects and AMQP routing keys.
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
