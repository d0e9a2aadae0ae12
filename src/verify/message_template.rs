//! Message templates: the text an HMAC is computed over, written with placeholders
//! (`{body}`, `{timestamp}.{body}`, `{id}.{timestamp}.{body}`, `v0:{timestamp}:{body}`,
//! `{method}{url}{body}{timestamp}`, `{url}{form_sorted}`, `{field:/signature/timestamp}`).
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
    /// `{method}`: the HTTP method, upper case.
    Method,
    /// `{url}`: the URL the sender called, as registered with it, plus `?query` when the request
    /// had one. Behind an ingress the gateway cannot see the public URL, so it is configured.
    Url,
    /// `{form_sorted}`: a form body's parameters sorted by name, each name then value, decoded
    /// (Twilio). Covers the whole body, as `{body}` does.
    FormSorted,
    /// `{field:/pointer}`: a value inside a JSON body, for senders that put the signed values
    /// next to the signature in the body (Mailgun). Missing reads as empty text.
    Field,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Piece(Piece),
    /// A `{field:...}` piece, with its pointer.
    Field(String),
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
    pub method: &'a str,
    pub url: &'a str,
    pub form_sorted: &'a [u8],
    /// The `{field:...}` values, in the order [`MessageTemplate::fields`] lists them.
    pub fields: &'a [String],
}

impl Values<'_> {
    /// Values for a template of body, timestamp and id only.
    pub fn of<'a>(body: &'a [u8], timestamp: &'a str, id: &'a str) -> Values<'a> {
        Values {
            body,
            timestamp,
            id,
            method: "",
            url: "",
            form_sorted: b"",
            fields: &[],
        }
    }
}

impl MessageTemplate {
    /// Parses `raw`. The error is a sentence for a config issue about the template.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, tail) = after.split_once('}').ok_or("unclosed `{` in message")?;
                segments.push(match name {
                    "body" => Segment::Piece(Piece::Body),
                    "timestamp" => Segment::Piece(Piece::Timestamp),
                    "id" => Segment::Piece(Piece::Id),
                    "method" => Segment::Piece(Piece::Method),
                    "url" => Segment::Piece(Piece::Url),
                    "form_sorted" => Segment::Piece(Piece::FormSorted),
                    field if field.starts_with("field:/") => {
                        Segment::Field(field.trim_start_matches("field:").to_owned())
                    }
                    other => return Err(format!("unknown placeholder `{{{other}}}` in message")),
                });
                rest = tail;
            } else {
                let literal = rest.split('{').next().unwrap_or_default();
                segments.push(Segment::Literal(literal.to_owned()));
                rest = rest.get(literal.len()..).unwrap_or_default();
            }
        }
        let template = MessageTemplate(segments);
        // A MAC that does not cover the body authenticates nothing a replayer cannot swap. The
        // one exception, signed fields inside the body, is fenced in where the template is used
        // (the dedup key must then be a signed field).
        if !template.covers_body() && template.fields().is_empty() {
            return Err("the message must include {body}".into());
        }
        Ok(template)
    }

    /// True when the template refers to `piece`, which then has to be found in the request.
    pub fn uses(&self, piece: Piece) -> bool {
        match piece {
            Piece::Field => self.0.iter().any(|s| matches!(s, Segment::Field(_))),
            piece => self.0.contains(&Segment::Piece(piece)),
        }
    }

    /// True when every byte of the body is signed (`{body}` or `{form_sorted}`).
    pub fn covers_body(&self) -> bool {
        self.uses(Piece::Body) || self.uses(Piece::FormSorted)
    }

    /// The pointers of the `{field:...}` pieces, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Segment::Field(pointer) => Some(pointer.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The message as slices to feed the MAC in order.
    pub fn parts<'a>(&'a self, values: Values<'a>) -> Vec<&'a [u8]> {
        let mut fields = values.fields.iter();
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Piece(Piece::Body) => values.body,
                Segment::Piece(Piece::Timestamp) => values.timestamp.as_bytes(),
                Segment::Piece(Piece::Id) => values.id.as_bytes(),
                Segment::Piece(Piece::Method) => values.method.as_bytes(),
                Segment::Piece(Piece::Url) => values.url.as_bytes(),
                Segment::Piece(Piece::FormSorted) => values.form_sorted,
                Segment::Piece(Piece::Field) | Segment::Field(_) => {
                    fields.next().map_or(&b""[..], |f| f.as_bytes())
                }
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
        assert_eq!(
            t.parts(Values::of(b"{}", "17", "m1")).concat(),
            b"v0:m1.17.{}"
        );
        assert!(!MessageTemplate::parse("{body}").unwrap().uses(Piece::Id));
        let t = MessageTemplate::parse("{method}{url}{form_sorted}|{field:/a}{field:/b}").unwrap();
        assert!(t.covers_body() && t.uses(Piece::Field));
        assert_eq!(t.fields(), ["/a", "/b"]);
        let fields = ["1".to_owned(), "2".to_owned()];
        let values = Values {
            method: "POST",
            url: "https://x/y",
            form_sorted: b"ab",
            fields: &fields,
            ..Values::of(b"", "", "")
        };
        assert_eq!(t.parts(values).concat(), b"POSThttps://x/yab|12");
        assert!(!MessageTemplate::parse("{field:/a}").unwrap().covers_body());
    }

    #[test]
    fn malformed_templates_say_what_is_wrong() {
        let err = |raw: &str| MessageTemplate::parse(raw).unwrap_err();
        assert_eq!(err("{body"), "unclosed `{` in message");
        assert_eq!(
            err("{path}{body}"),
            "unknown placeholder `{path}` in message"
        );
        assert_eq!(err("{timestamp}"), "the message must include {body}");
    }
}
