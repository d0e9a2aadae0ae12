//! Avro's binary encoding (the specification's "Binary Encoding" section) of the few types
//! `event.avsc` uses, written straight into a buffer.
//!
//! apache-avro's schema-aware serializer looks every field up by name in a hash map and walks the
//! schema as it writes: about 15,000 instructions for a 1 KiB Cronofy event, most of the encode
//! stage. The event's layout is fixed at build time, so `super::write_event` spells it out with
//! these primitives instead, and a test holds its bytes equal to apache-avro's for every branch.

/// A datum being written.
pub(super) struct Datum(pub(super) Vec<u8>);

impl Datum {
    /// `int` and `long`: zig-zag, then a little-endian base-128 varint.
    pub(super) fn long(&mut self, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    /// A count or length: Avro writes them as `long`s.
    pub(super) fn len(&mut self, n: usize) {
        self.long(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `bytes`: the length, then the bytes.
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    /// `string`: UTF-8, encoded as `bytes`.
    pub(super) fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A union's branch: its index in the union's list.
    pub(super) fn branch(&mut self, index: i64) {
        self.long(index);
    }

    /// `["null", "string"]`.
    pub(super) fn optional_string(&mut self, s: Option<&str>) {
        match s {
            None => self.branch(0),
            Some(s) => {
                self.branch(1);
                self.string(s);
            }
        }
    }

    /// `["null", "long"]`.
    pub(super) fn optional_long(&mut self, n: Option<i64>) {
        match n {
            None => self.branch(0),
            Some(n) => {
                self.branch(1);
                self.long(n);
            }
        }
    }

    /// `{"type": "array", "items": "string"}`: one block of all the items, then the empty block
    /// that ends the array (an empty array is that block alone).
    pub(super) fn string_array<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) {
        if items.len() > 0 {
            self.len(items.len());
            for item in items {
                self.string(item);
            }
        }
        self.len(0);
    }

    /// `{"type": "map", "values": "string"}`: like an array of key-value pairs.
    pub(super) fn string_map<'a>(
        &mut self,
        entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
    ) {
        if entries.len() > 0 {
            self.len(entries.len());
            for (key, value) in entries {
                self.string(key);
                self.string(value);
            }
        }
        self.len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(n: i64) -> Vec<u8> {
        let mut d = Datum(Vec::new());
        d.long(n);
        d.0
    }

    /// The specification's own table, and the ends of the range.
    #[test]
    fn longs_are_zigzag_varints() {
        assert_eq!(long(0), [0x00]);
        assert_eq!(long(-1), [0x01]);
        assert_eq!(long(1), [0x02]);
        assert_eq!(long(-2), [0x03]);
        assert_eq!(long(2), [0x04]);
        assert_eq!(long(-64), [0x7f]);
        assert_eq!(long(64), [0x80, 0x01]);
        assert_eq!(
            long(i64::MAX),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            long(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
