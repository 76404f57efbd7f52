//! The protobuf wire format, read-only: keys, varints, fixed-width numbers and length-delimited bytes.

use crate::DecodeError;

/// The wire type of a field, from the low three bits of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A value as it was on the wire; its meaning depends on the field's type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    /// A 32-bit value; no Kubernetes field has one, so only its presence is kept (to skip it).
    Fixed32,
}

/// Reads fields one after the other from a message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next field: its tag and value, or `None` at the end of the message. Groups (wire types 3 and 4,
    /// unused by Kubernetes) are an error.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| malformed("field number out of range"))?;
        if tag == 0 {
            return Err(malformed("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| malformed("length out of range"))?;
                Value::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            other => return Err(malformed(format!("unsupported wire type {other} (field {tag})"))),
        };
        Ok(Some((tag, value)))
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(malformed("varint overflows 64 bits"));
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(malformed(if self.buf.len() < 10 {
            "truncated varint"
        } else {
            "varint longer than 10 bytes"
        }))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(malformed("truncated message"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next fixed 64-bit value (for packed repeated doubles).
    pub fn fixed64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

impl Value<'_> {
    pub fn wire(&self) -> Wire {
        match self {
            Value::Varint(_) => Wire::Varint,
            Value::Fixed64(_) => Wire::Fixed64,
            Value::Len(_) => Wire::Len,
            Value::Fixed32 => Wire::Fixed32,
        }
    }
}

pub(crate) fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, String)>, DecodeError> {
        let mut reader = Reader::new(buf);
        let mut out = Vec::new();
        while let Some((tag, value)) = reader.next_field()? {
            out.push((tag, format!("{value:?}")));
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 2, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        let got = fields(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                (1, "Varint(150)".to_string()),
                (2, "Fixed64(1)".to_string()),
                (3, "Len([104, 105])".to_string()),
                (4, "Fixed32".to_string()),
            ]
        );
    }

    #[test]
    fn negative_int32_is_ten_bytes() {
        let buf = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let mut reader = Reader::new(&buf);
        let (_, value) = reader.next_field().unwrap().unwrap();
        let Value::Varint(v) = value else { panic!() };
        assert_eq!(v as i64, -1);
    }

    #[test]
    fn truncation_and_bad_wire_types_are_errors() {
        assert!(fields(&[0x0a, 5, b'a']).is_err(), "length past the end");
        assert!(fields(&[0x08, 0x80]).is_err(), "unterminated varint");
        assert!(fields(&[0x0b]).is_err(), "start group");
        assert!(fields(&[0x00, 0x00]).is_err(), "field number 0");
        assert!(fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
