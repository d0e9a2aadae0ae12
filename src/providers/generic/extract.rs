//! The values at a few JSON pointers, read in one pass over the body without building the
//! document: the mapping needs a handful of fields, and a `serde_json::Value` of a kilobyte of
//! JSON is dozens of allocations per webhook (docs/performance.md). Everything else is skipped
//! with `IgnoredAny`, which still checks that the whole body is JSON.
//!
//! Same answers as `serde_json::Value::pointer` on the parsed document, duplicates included (the
//! last occurrence of a key wins, as in `Value`); `tests` compares the two.

use std::fmt;

use serde::Deserialize as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A set of JSON pointers, split into their reference tokens once, when the source is built.
#[derive(Debug, Clone, Default)]
pub(super) struct Pointers {
    /// Each pointer's tokens (`~1` and `~0` decoded), in the order given.
    tokens: Vec<Vec<String>>,
}

impl Pointers {
    pub(super) fn new<'a>(pointers: impl IntoIterator<Item = &'a str>) -> Self {
        Pointers {
            tokens: pointers
                .into_iter()
                .map(|p| {
                    p.split('/')
                        .skip(1)
                        .map(|t| t.replace("~1", "/").replace("~0", "~"))
                        .collect()
                })
                .collect(),
        }
    }

    /// The text at each pointer (a string as is, a number as written by `serde_json`; anything
    /// else, or nothing there, `None`), in the order the pointers were given; an error when the
    /// body is not JSON.
    pub(super) fn extract(&self, body: &[u8]) -> Result<Vec<Option<String>>, serde_json::Error> {
        let mut found = vec![None; self.tokens.len()];
        let all: Vec<usize> = (0..self.tokens.len()).collect();
        let mut de = serde_json::Deserializer::from_slice(body);
        Node {
            pointers: self,
            wanted: &all,
            depth: 0,
            found: &mut found,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }
}

/// A string or number as the mapping reads it.
fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One value of the document, at `depth`, that the pointers in `wanted` reach or pass through.
struct Node<'a> {
    pointers: &'a Pointers,
    wanted: &'a [usize],
    depth: usize,
    found: &'a mut [Option<String>],
}

impl Node<'_> {
    fn tokens(&self, i: usize) -> &[String] {
        self.pointers.tokens.get(i).map_or(&[], Vec::as_slice)
    }

    /// The pointers that go on below this value through `token`.
    fn through(&self, token: &str) -> Vec<usize> {
        self.wanted
            .iter()
            .copied()
            .filter(|&i| {
                let t = self.tokens(i);
                t.len() > self.depth && t.get(self.depth).is_some_and(|x| x == token)
            })
            .collect()
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ends_here = self
            .wanted
            .iter()
            .any(|&i| self.tokens(i).len() == self.depth);
        if ends_here {
            // A pointer ends here: this value is wanted whole (a scalar, nearly always), and any
            // pointer going deeper is read off it.
            let value = serde_json::Value::deserialize(d)?;
            for &i in self.wanted {
                let rest = self.tokens(i).get(self.depth..).unwrap_or_default();
                let mut at = Some(&value);
                for token in rest {
                    at = at.and_then(|v| match v {
                        serde_json::Value::Object(m) => m.get(token),
                        serde_json::Value::Array(a) => index(token).and_then(|n| a.get(n)),
                        _ => None,
                    });
                }
                if let Some(slot) = self.found.get_mut(i) {
                    *slot = at.and_then(text_of);
                }
            }
            Ok(())
        } else {
            d.deserialize_any(self)
        }
    }
}

/// An array index as a JSON pointer writes it: decimal, no sign, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'_>>()? {
            let below = self.through(&key.0);
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                // A repeated key: the last occurrence is the one `Value` keeps.
                for &i in &below {
                    if let Some(slot) = self.found.get_mut(i) {
                        *slot = None;
                    }
                }
                map.next_value_seed(Node {
                    pointers: self.pointers,
                    wanted: &below,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                })?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0usize;
        loop {
            let below: Vec<usize> = self
                .wanted
                .iter()
                .copied()
                .filter(|&i| {
                    self.tokens(i)
                        .get(self.depth)
                        .and_then(|t| index(t))
                        .is_some_and(|at| at == n)
                })
                .collect();
            let more = if below.is_empty() {
                seq.next_element::<IgnoredAny>()?.is_some()
            } else {
                seq.next_element_seed(Node {
                    pointers: self.pointers,
                    wanted: &below,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                })?
                .is_some()
            };
            if !more {
                return Ok(());
            }
            n += 1;
        }
    }

    // A scalar where a pointer wanted to go deeper: nothing there.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes: most keys are compared and
/// dropped, so they are not copied.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(body: &str, pointers: &[&str]) -> Option<Vec<Option<String>>> {
        let value: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(
            pointers
                .iter()
                .map(|p| value.pointer(p).and_then(text_of))
                .collect(),
        )
    }

    /// The extractor and `Value::pointer` agree, on every kind of path and document.
    #[test]
    fn answers_as_value_pointer_does() {
        let pointers = [
            "/type",
            "/id",
            "/created",
            "/data/id",
            "/0/event",
            "/1/event",
            "/a~1b",
            "/m~0n",
            "/events/0/eventType",
            "/events/00",
            "/value/1/clientState",
            "/obj",
            "/dup",
            "/n/x",
            "",
        ];
        let bodies = [
            r#"{"type":"a.b","id":7,"created":1.5e3,"data":{"id":"x","more":[1,{"id":2}]}}"#,
            r#"[{"event":"open"},{"event":"click","n":null}]"#,
            r#"{"a/b":"slash","m~n":"tilde","obj":{"k":1},"dup":"first","dup":"last"}"#,
            r#"{"events":[{"eventType":"UPDATE"}],"value":[{},{"clientState":"s"}],"n":3}"#,
            r#"{"dup":{"x":1},"dup":2,"type":"\u00e9t\u00e9","id":-0}"#,
            r#""just a string""#,
            r#"{"type":"a"} trailing"#,
            r#"{"type":"#,
            "",
        ];
        let extractor = Pointers::new(pointers);
        for body in bodies {
            let got = extractor.extract(body.as_bytes()).ok();
            assert_eq!(got, reference(body, &pointers), "{body}");
        }
    }
}
