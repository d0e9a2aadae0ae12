//! Topic (Kafka) and subject (NATS) templates such as `webhooks.{provider}.{type}`.
//!
//! Parsed once at config time; rendering cannot fail. Values that come from a payload (the event type)
//! are reduced to characters both Kafka topics and NATS subject tokens accept, so a provider cannot
//! steer an event onto a wildcard (`*`, `>`) or an unexpected topic.

use std::fmt;

/// A parsed template.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    /// As written: what messages and `Debug` show.
    raw: String,
    /// Parsed once, so rendering per event is a walk over these, never a parse.
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Operator-written text, checked at parse time.
    Literal(String),
    Source,
    Provider,
    /// The event type, from the payload: sanitised at render, and free to hold dots.
    Type,
}

/// The values a template can refer to.
pub struct TopicVars<'a> {
    /// The source's name, `[sources.NAME]`.
    pub source: &'a str,
    pub provider: &'a str,
    /// From the payload, so never trusted: sanitised when rendered.
    pub event_type: &'a str,
}

impl TopicTemplate {
    /// Parses at config time, so a bad template fails check-config with its reason, never a
    /// publish.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while !rest.is_empty() {
            if let Some(after_brace) = rest.strip_prefix('{') {
                let (name, tail) = after_brace
                    .split_once('}')
                    .ok_or("unclosed `{` in template")?;
                parts.push(match name {
                    "source" => Part::Source,
                    "provider" => Part::Provider,
                    "type" => Part::Type,
                    other => {
                        return Err(format!(
                            "unknown placeholder `{{{other}}}`; expected {{source}}, {{provider}} or {{type}}"
                        ));
                    }
                });
                rest = tail;
            } else {
                let literal = rest.split('{').next().unwrap_or_default();
                if literal.contains('}') {
                    return Err("unmatched `}` in template".into());
                }
                // Refused, not sanitised as payload values are: the operator wrote it
                // and can fix it, which check-config then says.
                if let Some(c) = literal.chars().find(|c| !is_topic_char(*c)) {
                    return Err(format!(
                        "character {c:?} is not allowed in topics and subjects"
                    ));
                }
                parts.push(Part::Literal(literal.to_owned()));
                rest = rest.get(literal.len()..).unwrap_or_default();
            }
        }
        if parts.is_empty() {
            return Err("template is empty".into());
        }
        // `.x`, `x.` and `a..b` hold an empty token, which NATS refuses in a subject.
        if raw.starts_with('.') || raw.ends_with('.') || raw.contains("..") {
            return Err("template must not start or end with `.` or contain `..`".into());
        }
        Ok(TopicTemplate {
            raw: raw.to_owned(),
            parts,
        })
    }

    /// The topic for one event. Values are sanitised, so the result is always a valid Kafka topic
    /// and NATS subject: rendering cannot fail.
    pub fn render(&self, vars: &TopicVars<'_>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Source => push_sanitized(&mut out, vars.source),
                Part::Provider => push_sanitized(&mut out, vars.provider),
                Part::Type => push_sanitized(&mut out, vars.event_type),
            }
        }
        out
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True when `topic` is what this template renders for `source` and `provider` and some event
    /// type: how the schema registry finds which existing subjects are ours.
    pub fn could_render(&self, topic: &str, source: &str, provider: &str) -> bool {
        let mut source_part = String::new();
        push_sanitized(&mut source_part, source);
        let mut provider_part = String::new();
        push_sanitized(&mut provider_part, provider);
        matches_from(&self.parts, topic, &source_part, &provider_part)
    }
}

/// Backtracking match of `rest` against `parts`. A `{type}` may hold dots, so where it ends is
/// found by trying each cut; templates are short, and this runs at start only.
fn matches_from(parts: &[Part], rest: &str, source: &str, provider: &str) -> bool {
    let Some((first, tail)) = parts.split_first() else {
        return rest.is_empty();
    };
    let fixed = match first {
        Part::Literal(s) => Some(s.as_str()),
        Part::Source => Some(source),
        Part::Provider => Some(provider),
        Part::Type => None,
    };
    match fixed {
        Some(prefix) => rest
            .strip_prefix(prefix)
            .is_some_and(|rest| matches_from(tail, rest, source, provider)),
        // An event type: any non-empty run of topic characters, then the rest of the template.
        None => (1..=rest.len()).any(|cut| {
            rest.split_at_checked(cut)
                .is_some_and(|(event_type, after)| {
                    event_type.chars().all(is_topic_char)
                        && matches_from(tail, after, source, provider)
                })
        }),
    }
}

// The text, not the parts: what a config error should print.
impl fmt::Debug for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicTemplate({:?})", self.raw)
    }
}

/// Characters legal in a Kafka topic name that are also safe in a NATS subject.
fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

/// Copies `value`, replacing anything outside the safe set with `_` and never producing an empty
/// token (`a..b`), which NATS rejects.
fn push_sanitized(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    let mut previous = '.';
    // At most 100 characters of a value, so a payload cannot make a topic name arbitrarily
    // long (Kafka allows 249). `previous` starts as `.`: the template's own dot may precede.
    for c in value.chars().take(100) {
        let c = if is_topic_char(c) { c } else { '_' };
        // A second dot in a row would make an empty token.
        let c = if c == '.' && previous == '.' { '_' } else { c };
        out.push(c);
        previous = c;
    }
    // Nor may it end on one: an empty token before the template's next dot, or at the end.
    if previous == '.' {
        out.pop();
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(event_type: &'a str) -> TopicVars<'a> {
        TopicVars {
            source: "cronofy-eu",
            provider: "cronofy",
            event_type,
        }
    }

    #[test]
    fn renders_placeholders() {
        let t = TopicTemplate::parse("webhooks.{provider}.{type}").unwrap();
        assert_eq!(
            t.render(&vars("calendar.changed")),
            "webhooks.cronofy.calendar.changed"
        );
        let t = TopicTemplate::parse("hb-{source}").unwrap();
        assert_eq!(t.render(&vars("x")), "hb-cronofy-eu");
    }

    #[test]
    fn payload_values_cannot_inject_wildcards_or_empty_tokens() {
        let t = TopicTemplate::parse("webhooks.{type}").unwrap();
        assert_eq!(t.render(&vars("a.>")), "webhooks.a._");
        assert_eq!(t.render(&vars("*")), "webhooks._");
        assert_eq!(t.render(&vars("..x")), "webhooks._.x");
        assert_eq!(t.render(&vars("")), "webhooks._");
        assert_eq!(t.render(&vars("a b\n")), "webhooks.a_b_");
    }

    #[test]
    fn a_template_recognises_the_topics_it_renders() {
        let t = TopicTemplate::parse("webhooks.{provider}.{type}").unwrap();
        assert!(t.could_render("webhooks.cronofy.calendar.changed", "c", "cronofy"));
        assert!(!t.could_render("webhooks.stripe.invoice.paid", "c", "cronofy"));
        assert!(!t.could_render("webhooks.cronofy.", "c", "cronofy"));
        let t = TopicTemplate::parse("dl.{source}").unwrap();
        assert!(t.could_render("dl.cronofy-eu", "cronofy-eu", "cronofy"));
        assert!(!t.could_render("dl.cronofy-eu.x", "cronofy-eu", "cronofy"));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(
            TopicTemplate::parse("webhooks.{nope}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(TopicTemplate::parse("webhooks.{type").is_err());
        assert!(TopicTemplate::parse("a b").is_err());
        assert!(TopicTemplate::parse("webhooks.>").is_err());
        assert!(TopicTemplate::parse("").is_err());
        assert!(TopicTemplate::parse(".x").is_err());
    }
}
