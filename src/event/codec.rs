//! The machinery both Avro records share (the canonical event and the dead letter): one embedded
//! schema parsed once, a writer and a reader bound to it, and its spec-correct fingerprint. Each
//! record's module adds only what is its own: how its fields serialize and decode.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;

use super::avro::MAX_DECODE_ALLOCATION_BYTES;

/// A parsed schema with its writer, reader and fingerprint.
pub struct SchemaCodec {
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    fingerprint: String,
}

impl SchemaCodec {
    /// Parses an embedded schema once (into `cell`, which must be `'static` so the writer and
    /// reader can borrow it).
    pub(crate) fn load(
        avsc: &'static str,
        cell: &'static OnceLock<Result<Schema, String>>,
    ) -> Result<Self, String> {
        // Process-wide and set once: every codec is loaded before anything is decoded.
        let cap = apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION_BYTES);
        if cap > MAX_DECODE_ALLOCATION_BYTES {
            tracing::warn!(
                cap,
                "apache-avro's allocation cap was set before hookbridge's"
            );
        }
        let schema = cell
            .get_or_init(|| Schema::parse_str(avsc).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)?;
        let writer = GenericDatumWriter::builder(schema)
            // The serializer already checks every value against the schema as it writes.
            .validate(false)
            .human_readable(false)
            .build()
            .map_err(|e| e.to_string())?;
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(SchemaCodec {
            schema,
            writer,
            reader,
            fingerprint: super::fingerprint::rabin_hex(avsc)?,
        })
    }

    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// Rabin fingerprint of the schema's canonical form (hex), as the Avro spec defines it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Writes `record` as a bare Avro datum (no container header); `capacity` is a size guess.
    pub(crate) fn write<T: Serialize>(
        &self,
        record: &T,
        capacity: usize,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(capacity);
        self.writer
            .write_ser(&mut out, record)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Reads exactly one datum: bytes left after it are an error, not ignored. A bogus length
    /// prefix costs at most the allocation cap and then fails on the first read past the input.
    pub(crate) fn read_one(&self, bytes: &[u8]) -> Result<Value, String> {
        let mut input = bytes;
        let value = self
            .reader
            .read_value(&mut input)
            .map_err(|e| e.to_string())?;
        if !input.is_empty() {
            let extra = input.len();
            return Err(format!("{extra} bytes after the record"));
        }
        Ok(value)
    }
}
