//! Message templates: the text an HMAC is computed over, written with placeholders
//! (`{body}`, `{timestamp}.{body}`, `{id}.{timestamp}.{body}`, `v0:{timestamp}:{body}`).
//!
//! Senders that sign more than the body differ mostly in which signed values they glue in front
//! of it and with what separator; a template states that as data, so a new sender is a setting
//! rather than a function. The pieces go to the MAC as separate slices: the body is never copied
//! to build the message.

/// A request value a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// `{body}`: the raw body, exactly as received.
    Body,
    /// `{timestamp}`: the signed timestamp's text as sent. Not reformatted: the sender signed
    /// those bytes, so `0170` and `170` are different messages.
    Timestamp,
    /// `{id}`: the signed message id.
    Id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Piece(Piece),
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone)]
pub struct MessageTemplate(Vec<Segment>);

/// What a template is filled with. A value the template does not use may be empty.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub body: &'a [u8],
    pub timestamp: &'a str,
    pub id: &'a str,
}

impl MessageTemplate {
    /// Parses `raw`. The error is a sentence for a config issue about the template.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, tail) = after.split_once('}').ok_or("unclosed `{` in message")?;
                segments.push(Segment::Piece(match name {
                    "body" => Piece::Body,
                    "timestamp" => Piece::Timestamp,
                    "id" => Piece::Id,
                    other => return Err(format!("unknown placeholder `{{{other}}}` in message")),
                }));
                rest = tail;
            } else {
                let literal = rest.split('{').next().unwrap_or_default();
                segments.push(Segment::Literal(literal.to_owned()));
                rest = rest.get(literal.len()..).unwrap_or_default();
            }
        }
        // A MAC that does not cover the body authenticates nothing a replayer cannot swap.
        if !segments.contains(&Segment::Piece(Piece::Body)) {
            return Err("the message must include {body}".into());
        }
        Ok(MessageTemplate(segments))
    }

    /// True when the template refers to `piece`, which then has to be found in the request.
    pub fn uses(&self, piece: Piece) -> bool {
        self.0.contains(&Segment::Piece(piece))
    }

    /// The message as slices to feed the MAC in order.
    pub fn parts<'a>(&'a self, values: Values<'a>) -> Vec<&'a [u8]> {
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Piece(Piece::Body) => values.body,
                Segment::Piece(Piece::Timestamp) => values.timestamp.as_bytes(),
                Segment::Piece(Piece::Id) => values.id.as_bytes(),
                Segment::Literal(text) => text.as_bytes(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_literals_fill_in_order() {
        let t = MessageTemplate::parse("v0:{id}.{timestamp}.{body}").unwrap();
        assert!(t.uses(Piece::Id) && t.uses(Piece::Timestamp));
        let values = Values {
            body: b"{}",
            timestamp: "17",
            id: "m1",
        };
        assert_eq!(t.parts(values).concat(), b"v0:m1.17.{}");
        assert!(!MessageTemplate::parse("{body}").unwrap().uses(Piece::Id));
    }

    #[test]
    fn malformed_templates_say_what_is_wrong() {
        let err = |raw: &str| MessageTemplate::parse(raw).unwrap_err();
        assert_eq!(err("{body"), "unclosed `{` in message");
        assert_eq!(err("{url}{body}"), "unknown placeholder `{url}` in message");
        assert_eq!(err("{timestamp}"), "the message must include {body}");
    }
}
