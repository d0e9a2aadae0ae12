//! Schema fingerprints as the Avro specification defines them: CRC-64-AVRO ("Rabin") of the
//! Parsing Canonical Form, written as 8 little-endian bytes in hex.
//!
//! Computed here rather than with apache-avro because apache-avro 0.22's canonical form keeps
//! `{"type":"long"}` for logical types where the spec (and fastavro, the Java library, ...) reduce it
//! to `"long"`, so its fingerprint names a schema no other implementation would find.

use serde_json::{Map, Value};

/// The attributes Parsing Canonical Form keeps, in the order it writes them.
const KEPT: &[&str] = &[
    "name", "type", "fields", "symbols", "items", "values", "size",
];
const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];
const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

/// Hex fingerprint of a schema given as JSON text.
pub fn rabin_hex(schema_json: &str) -> Result<String, String> {
    let schema: Value =
        serde_json::from_str(schema_json).map_err(|e| format!("schema is not JSON: {e}"))?;
    let canonical = canonical_form(&schema, None)?;
    Ok(hex::encode(rabin(canonical.as_bytes()).to_le_bytes()))
}

/// The Parsing Canonical Form of `schema`, resolving names against `namespace`.
pub fn canonical_form(schema: &Value, namespace: Option<&str>) -> Result<String, String> {
    match schema {
        Value::String(name) => Ok(quote(&full_name(name, namespace))),
        Value::Array(branches) => {
            let parts: Result<Vec<String>, String> = branches
                .iter()
                .map(|b| canonical_form(b, namespace))
                .collect();
            Ok(format!("[{}]", parts?.join(",")))
        }
        Value::Object(object) => object_form(object, namespace),
        other => Err(format!("not a schema: {other}")),
    }
}

fn object_form(object: &Map<String, Value>, namespace: Option<&str>) -> Result<String, String> {
    let kind = object.get("type").ok_or("schema object without type")?;
    // [PRIMITIVES] and [STRIP]: {"type":"long","logicalType":...} is just "long".
    if let Value::String(k) = kind
        && PRIMITIVES.contains(&k.as_str())
    {
        return Ok(quote(k));
    }
    let Value::String(kind_name) = kind else {
        return canonical_form(kind, namespace);
    };
    let named = matches!(kind_name.as_str(), "record" | "error" | "enum" | "fixed");
    let own_namespace = object
        .get("namespace")
        .and_then(Value::as_str)
        .or(namespace);
    let name = match (named, object.get("name").and_then(Value::as_str)) {
        (true, Some(n)) => Some(full_name(n, own_namespace)),
        (true, None) => return Err("named schema without a name".into()),
        _ => None,
    };
    // Names inside a named type resolve against that type's namespace.
    let inner_namespace = name
        .as_deref()
        .and_then(|n| n.rsplit_once('.').map(|(ns, _)| ns))
        .or(namespace);
    let mut out = Vec::new();
    for key in KEPT {
        let Some(value) = object.get(*key) else {
            continue;
        };
        let text = match *key {
            "name" => quote(name.as_deref().unwrap_or_default()),
            "type" => quote(kind_name),
            "fields" => {
                let fields = value.as_array().ok_or("fields is not an array")?;
                let rendered: Result<Vec<String>, String> = fields
                    .iter()
                    .map(|f| {
                        let f = f.as_object().ok_or("field is not an object")?;
                        let fname = f
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or("field without name")?;
                        let ftype = f.get("type").ok_or("field without type")?;
                        Ok(format!(
                            "{{\"name\":{},\"type\":{}}}",
                            quote(fname),
                            canonical_form(ftype, inner_namespace)?
                        ))
                    })
                    .collect();
                format!("[{}]", rendered?.join(","))
            }
            "symbols" => serde_json::to_string(value).map_err(|e| e.to_string())?,
            "items" | "values" => canonical_form(value, inner_namespace)?,
            "size" => value.as_u64().ok_or("size is not a number")?.to_string(),
            _ => continue,
        };
        out.push(format!("{}:{text}", quote(key)));
    }
    Ok(format!("{{{}}}", out.join(",")))
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !PRIMITIVES.contains(&name) && !ns.is_empty() => {
            format!("{ns}.{name}")
        }
        _ => name.to_owned(),
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// CRC-64-AVRO over `bytes` (the specification's reference algorithm).
pub fn rabin(bytes: &[u8]) -> u64 {
    let table: [u64; 256] = std::array::from_fn(|i| {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & 0u64.wrapping_sub(fp & 1));
        }
        fp
    });
    bytes.iter().fold(EMPTY, |fp, b| {
        (fp >> 8) ^ table[((fp ^ u64::from(*b)) & 0xff) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by fastavro (`fastavro.schema.fingerprint(..., "CRC-64-AVRO")`), an
    /// independent implementation, for the committed schema.
    #[test]
    fn event_schema_fingerprint_matches_fastavro() {
        assert_eq!(
            rabin_hex(crate::event::avro::EVENT_AVSC).unwrap(),
            "f826bc772e76d582"
        );
    }

    #[test]
    fn primitives_and_logical_types_reduce_to_their_simple_form() {
        let s: Value =
            serde_json::from_str(r#"{"type":"long","logicalType":"timestamp-micros"}"#).unwrap();
        assert_eq!(canonical_form(&s, None).unwrap(), r#""long""#);
        let r: Value = serde_json::from_str(
            r#"{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[{"name":"f","type":["null","R"],"default":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&r, None).unwrap(),
            r#"{"name":"a.b.R","type":"record","fields":[{"name":"f","type":["null","a.b.R"]}]}"#
        );
    }

    /// `"int"`, as fastavro fingerprints it.
    #[test]
    fn rabin_of_int_is_the_known_value() {
        assert_eq!(rabin_hex(r#""int""#).unwrap(), "8f5c393f1ad57572");
    }
}
