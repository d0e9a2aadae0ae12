//! The on-disk form of a spooled event: a version byte, then length-prefixed fields.
//!
//! Hand-written rather than serde: the payload is binary Avro (JSON would base64 it), the format
//! must stay readable by the next release, and decoding bytes from disk must never panic.

use crate::dead_letter::DEAD_LETTER_CONTENT_TYPE;
use crate::event::avro::EVENT_CONTENT_TYPE;
use crate::event::cloudevents::CloudEventAttributes;
use crate::publish::OutboundMessage;

use super::SpoolError;

/// Version 2 added the claim window; version 1 entries were always claimed before spooling.
const VERSION: u8 = 2;
const VERSION_CLAIMED: u8 = 1;

/// One accepted event waiting for its broker.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolEntry {
    /// Name of the publisher it is for.
    pub publisher: String,
    /// Its source: named in metrics, and what the drainer dead-letters a refusal under.
    pub source: String,
    /// The source-scoped dedup key.
    pub dedup_key: String,
    /// `None`: the key was claimed and confirmed when the event was spooled. `Some(window)`: the
    /// dedup store could not be reached then, so the drainer claims the key for this window
    /// before publishing (and drops the entry if it is a duplicate by then).
    pub claim_window: Option<std::time::Duration>,
    /// The message exactly as it would have been published: the drainer sends it unchanged, so a
    /// late copy carries the same broker-side id and headers as a prompt one would have.
    pub message: OutboundMessage,
}

impl PartialEq for OutboundMessage {
    fn eq(&self, other: &Self) -> bool {
        self.topic == other.topic
            && self.key == other.key
            && self.dedup_key == other.dedup_key
            && self.cloudevent == other.cloudevent
            && self.payload == other.payload
    }
}

/// One field: its length as a little-endian `u32`, then its bytes.
fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

/// Reads fields from bytes that came off a disk: every length is checked, nothing indexes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self) -> Result<&'a [u8], SpoolError> {
        let corrupt = || SpoolError::Corrupt("truncated field".into());
        let len_bytes: [u8; 4] = self
            .0
            .get(..4)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        // A length past the end (a damaged or truncated entry) is `Corrupt`, never a panic:
        // damage on disk must cost one entry (quarantined), not the gateway.
        let field = self.0.get(4..4 + len).ok_or_else(corrupt)?;
        self.0 = self.0.get(4 + len..).unwrap_or_default();
        Ok(field)
    }

    fn string(&mut self) -> Result<String, SpoolError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| SpoolError::Corrupt("field is not UTF-8".into()))
    }
}

impl SpoolEntry {
    pub fn encode(&self) -> Vec<u8> {
        let m = &self.message;
        let mut out = Vec::with_capacity(m.payload.len() + 512);
        out.push(VERSION);
        for field in [
            &self.publisher,
            &self.source,
            &self.dedup_key,
            &m.topic,
            &m.key,
            &m.dedup_key,
        ] {
            put(&mut out, field.as_bytes());
        }
        put(
            &mut out,
            &(m.cloudevent.attributes.len() as u32).to_le_bytes(),
        );
        for (name, value) in &m.cloudevent.attributes {
            put(&mut out, name.as_bytes());
            put(&mut out, value.as_bytes());
        }
        put(&mut out, m.cloudevent.content_type.as_bytes());
        put(&mut out, &m.payload);
        // 0 means "claimed"; a sub-second window still needs its claim, so it rounds up to 1 s.
        let window = self.claim_window.map_or(0, |w| w.as_secs().max(1));
        put(&mut out, &window.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SpoolError> {
        let (version, rest) = bytes
            .split_first()
            .ok_or_else(|| SpoolError::Corrupt("empty entry".into()))?;
        // Anything else is refused, not guessed at: the drainer quarantines it as unreadable.
        if *version != VERSION && *version != VERSION_CLAIMED {
            return Err(SpoolError::Corrupt(format!(
                "unknown entry version {version}"
            )));
        }
        let mut r = Reader(rest);
        let publisher = r.string()?;
        let source = r.string()?;
        let scoped_key = r.string()?;
        let topic = r.string()?;
        let key = r.string()?;
        let dedup_key = r.string()?;
        let count_bytes: [u8; 4] = r
            .bytes()?
            .try_into()
            .map_err(|_| SpoolError::Corrupt("bad attribute count".into()))?;
        let count = u32::from_le_bytes(count_bytes) as usize;
        // The count comes from disk: capped, so a damaged one cannot reserve gigabytes.
        let mut attributes = Vec::with_capacity(count.min(16));
        for _ in 0..count {
            let name = r.string()?;
            let value = r.string()?;
            // A name this release does not know is dropped rather than invented.
            if let Some(known) = crate::event::cloudevents::known_attribute(&name) {
                attributes.push((known, value));
            }
        }
        // Content types are `&'static str` in memory: only the two hookbridge writes are valid.
        let content_type = match r.bytes()? {
            t if t == EVENT_CONTENT_TYPE.as_bytes() => EVENT_CONTENT_TYPE,
            t if t == DEAD_LETTER_CONTENT_TYPE.as_bytes() => DEAD_LETTER_CONTENT_TYPE,
            _ => return Err(SpoolError::Corrupt("unknown content type".into())),
        };
        let payload = r.bytes()?.to_vec();
        // Version 1 was written only after a claim, and has no window field.
        let claim_window = if *version == VERSION_CLAIMED {
            None
        } else {
            let secs: [u8; 8] = r
                .bytes()?
                .try_into()
                .map_err(|_| SpoolError::Corrupt("bad claim window".into()))?;
            match u64::from_le_bytes(secs) {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            }
        };
        Ok(SpoolEntry {
            publisher,
            source,
            dedup_key: scoped_key,
            claim_window,
            message: OutboundMessage {
                topic,
                key,
                dedup_key,
                cloudevent: CloudEventAttributes {
                    attributes,
                    content_type,
                },
                payload,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_panics_on_damaged_bytes() {
        let e = SpoolEntry {
            publisher: "nats".into(),
            source: "dp".into(),
            dedup_key: "dp/sha256:x".into(),
            claim_window: None,
            message: OutboundMessage {
                topic: "t".into(),
                key: "k".into(),
                dedup_key: "sha256:x".into(),
                cloudevent: CloudEventAttributes {
                    attributes: vec![
                        ("id", "sha256:x".into()),
                        ("type", "io.hookbridge.a".into()),
                    ],
                    content_type: EVENT_CONTENT_TYPE,
                },
                payload: vec![0, 1, 2, 255],
            },
        };
        let bytes = e.encode();
        assert_eq!(SpoolEntry::decode(&bytes).unwrap(), e);
        let mut letter = e.clone();
        letter.message.cloudevent.content_type = DEAD_LETTER_CONTENT_TYPE;
        assert_eq!(
            SpoolEntry::decode(&letter.encode()).unwrap(),
            letter,
            "dead letters keep their type"
        );
        for cut in 0..bytes.len() {
            assert!(
                SpoolEntry::decode(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut huge = bytes.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SpoolEntry::decode(&huge).is_err());
        assert!(SpoolEntry::decode(&[9]).is_err());
        let mut unclaimed = e.clone();
        unclaimed.claim_window = Some(std::time::Duration::from_secs(3600));
        assert_eq!(
            SpoolEntry::decode(&unclaimed.encode()).unwrap(),
            unclaimed,
            "an unclaimed entry keeps the window the drainer must claim it for"
        );
    }

    #[test]
    fn version_1_entries_read_as_claimed() {
        let e = SpoolEntry {
            publisher: "nats".into(),
            source: "dp".into(),
            dedup_key: "dp/x".into(),
            claim_window: None,
            message: OutboundMessage {
                topic: "t".into(),
                key: "k".into(),
                dedup_key: "dp/x".into(),
                cloudevent: CloudEventAttributes {
                    attributes: vec![("id", "x".into())],
                    content_type: EVENT_CONTENT_TYPE,
                },
                payload: vec![7],
            },
        };
        let mut v1 = e.encode();
        v1[0] = VERSION_CLAIMED;
        v1.truncate(v1.len() - 12); // without the claim-window field
        assert_eq!(SpoolEntry::decode(&v1).unwrap(), e);
    }
}
