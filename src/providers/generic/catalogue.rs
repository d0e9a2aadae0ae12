//! The preset catalogue as people read it: `hookbridge presets` (one line per preset),
//! `hookbridge presets NAME` (a ready `[sources.NAME]` table) and the README's preset table. All
//! three are written from the preset table itself, so none can disagree with what a preset does;
//! a test keeps the README's copy equal to [`markdown_table`].

use super::presets::{PRESETS, Preset};

/// What a preset does, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub name: &'static str,
    pub title: &'static str,
    /// `hmac sha256 hex`, `public_key ed25519`, `token`, `basic`.
    pub scheme: String,
    /// What the signature covers.
    pub signed: String,
    /// The request headers the scheme reads.
    pub headers: String,
    /// Where the event type comes from.
    pub event_type: String,
    /// Where the dedup key comes from.
    pub id: String,
    /// The handshake answered, if any.
    pub handshake: Option<String>,
    pub docs: &'static str,
}

fn text<'a>(t: &'a toml::Table, key: &str) -> Option<&'a str> {
    t.get(key).and_then(toml::Value::as_str)
}

/// A string or list of strings, joined.
fn texts(t: &toml::Table, key: &str, separator: &str) -> Option<String> {
    match t.get(key)? {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(toml::Value::as_str)
                .collect::<Vec<_>>()
                .join(separator),
        ),
        _ => None,
    }
}

/// Appends `text` and a newline.
fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

fn code(s: &str) -> String {
    format!("`{s}`")
}

/// Describes `preset` from its defaults.
pub fn describe(preset: &Preset) -> Description {
    let t: toml::Table = preset.defaults.parse().unwrap_or_default();
    let scheme = text(&t, "scheme").unwrap_or("hmac");
    let signs = matches!(scheme, "hmac" | "public_key");
    let message = text(&t, "message").unwrap_or("{body}");
    let signs_id = signs && message.contains("{id}");
    let scheme_words = match scheme {
        "hmac" => format!(
            "hmac {} {}",
            text(&t, "algorithm").unwrap_or("sha256"),
            text(&t, "encoding").unwrap_or("hex")
        ),
        "public_key" => format!("public_key {}", text(&t, "algorithm").unwrap_or("?")),
        other => other.to_owned(),
    };
    let signed = match scheme {
        "hmac" | "public_key" => match text(&t, "signature_pointer") {
            Some(at) => format!("{} (signature at {} in the body)", code(message), code(at)),
            None => code(message),
        },
        "token" => match text(&t, "pointer") {
            Some(at) => format!("nothing: a shared token at {} in the body", code(at)),
            None => "nothing: a shared token".to_owned(),
        },
        "basic" => "nothing: HTTP basic auth".to_owned(),
        other => other.to_owned(),
    };
    let mut headers: Vec<String> = Vec::new();
    if let Some(h) = texts(&t, "header", ", ") {
        headers.push(h);
    }
    if scheme == "basic" {
        headers.push("Authorization".into());
    }
    for key in ["timestamp_header", "id_header", "type_header"] {
        if let Some(h) = text(&t, key) {
            headers.push(h.to_owned());
        }
    }
    let event_type = if let Some(h) = text(&t, "type_header") {
        match t.get("type_names").and_then(toml::Value::as_array) {
            Some(names) if signs => format!(
                "header {} ({} published names, else `{}.other`)",
                code(h),
                names.len(),
                preset.name
            ),
            _ => format!("header {}", code(h)),
        }
    } else if let Some(p) = texts(&t, "type_pointer", " + ") {
        format!("body {}", code(&p))
    } else if let Some(fixed) = text(&t, "event_type") {
        format!("fixed {}", code(fixed))
    } else {
        "set `type_pointer` or `event_type`".to_owned()
    };
    let id = if let Some(p) = text(&t, "id_pointer") {
        format!("body {}", code(p))
    } else {
        match text(&t, "id_header") {
            Some(h) if signs_id => format!("signed header {}", code(h)),
            Some(h) if !signs => format!("header {}", code(h)),
            Some(h) => format!("body hash ({} kept as `delivery_id`)", code(h)),
            None => "body hash".to_owned(),
        }
    };
    Description {
        name: preset.name,
        title: preset.title,
        scheme: scheme_words,
        signed,
        headers: headers.join(", "),
        event_type,
        id,
        handshake: text(&t, "handshake").map(str::to_owned),
        docs: preset.docs,
    }
}

/// Every preset, described.
pub fn descriptions() -> Vec<Description> {
    PRESETS.iter().map(describe).collect()
}

/// `hookbridge presets`: one block per preset.
pub fn listing() -> String {
    let mut out = String::new();
    for d in descriptions() {
        line(
            &mut out,
            format!("{:<18} {} ({})", d.name, d.title, d.scheme),
        );
        line(
            &mut out,
            format!("    signed:    {}", d.signed.replace('`', "")),
        );
        line(&mut out, format!("    headers:   {}", d.headers));
        line(
            &mut out,
            format!("    type:      {}", d.event_type.replace('`', "")),
        );
        line(
            &mut out,
            format!("    dedup key: {}", d.id.replace('`', "")),
        );
        if let Some(h) = &d.handshake {
            line(&mut out, format!("    handshake: {h}"));
        }
        line(&mut out, format!("    docs:      {}", d.docs));
    }
    out
}

/// The README's preset table (between its `presets:begin` and `presets:end` markers).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| `provider` | scheme | signed | type | dedup key | handshake |\n|---|---|---|---|---|---|\n",
    );
    for d in descriptions() {
        line(
            &mut out,
            format!(
                "| [`{}`]({}) | {} | {} | {} | {} | {} |",
                d.name,
                d.docs,
                d.scheme,
                d.signed.replace('|', "\\|"),
                d.event_type,
                d.id,
                d.handshake.as_deref().map_or(String::new(), code)
            ),
        );
    }
    out
}

/// `hookbridge presets NAME`: a source table to paste, with secret references, or `None` for an
/// unknown name.
pub fn source_table(name: &str) -> Option<String> {
    let preset = PRESETS.iter().find(|p| p.name == name)?;
    let t: toml::Table = preset.defaults.parse().unwrap_or_default();
    let env = format!("{}_WEBHOOK_SECRET", name.to_uppercase());
    let mut out = format!(
        "# {} ({}): {}\n# Every key of the preset can be overridden in the verify table; `hookbridge presets` lists them.\n[sources.{name}]\nprovider = \"{name}\"\npublisher = \"nats\"\n[sources.{name}.verify]\n",
        preset.title,
        describe(preset).scheme,
        preset.docs
    );
    match text(&t, "scheme") {
        Some("public_key") => out.push_str("public_keys = [\"<the sender's public key>\"]\n"),
        Some("basic") => {
            line(
                &mut out,
                format!("username = \"hookbridge\"\nsecrets = [\"env:{env}\"]   # the password"),
            );
        }
        _ => {
            line(&mut out, format!("secrets = [\"env:{env}\"]"));
        }
    }
    if text(&t, "message").is_some_and(|m| m.contains("{url}")) {
        line(
            &mut out,
            format!(
                "url = \"https://hooks.example.com/webhooks/{name}\"   # exactly as registered with the sender"
            ),
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is the catalogue's: regenerate it with `hookbridge presets --markdown`.
    #[test]
    fn the_readme_table_is_the_catalogue() {
        let readme = include_str!("../../../README.md");
        let begin = "<!-- presets:begin (hookbridge presets --markdown) -->\n";
        let end = "<!-- presets:end -->";
        let (_, after) = readme
            .split_once(begin)
            .expect("README has the presets:begin marker");
        let (table, _) = after
            .split_once(end)
            .expect("README has the presets:end marker");
        assert_eq!(
            table,
            markdown_table(),
            "README preset table is stale: run `hookbridge presets --markdown`"
        );
    }

    /// Each printed source table loads as a source of its preset (with its placeholders filled).
    #[test]
    fn every_source_table_parses_and_names_its_preset() {
        for p in PRESETS {
            let text = source_table(p.name).unwrap();
            let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let source = &table["sources"][p.name];
            assert_eq!(source["provider"].as_str(), Some(p.name));
            let verify = source["verify"].as_table().unwrap();
            assert!(verify.contains_key("secrets") || verify.contains_key("public_keys"));
        }
        assert_eq!(source_table("nope"), None);
    }

    #[test]
    fn descriptions_say_what_is_signed_and_where_ids_come_from() {
        let d = |name: &str| describe(PRESETS.iter().find(|p| p.name == name).unwrap());
        assert_eq!(
            d("github").id,
            "body hash (`X-GitHub-Delivery` kept as `delivery_id`)"
        );
        assert_eq!(d("svix").id, "signed header `svix-id`");
        assert_eq!(d("slack").signed, "`v0:{timestamp}:{body}`");
        assert_eq!(d("slack").handshake.as_deref(), Some("slack"));
        assert_eq!(d("discord").scheme, "public_key ed25519");
        assert!(d("shopify").event_type.contains("published names"));
        assert_eq!(d("gitlab").id, "header `Idempotency-Key`");
    }
}
