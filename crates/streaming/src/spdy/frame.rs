//! SPDY/3.1 frames and their wire format.
//!
//! Every frame starts with eight bytes. A control frame has the high bit set, the version (3) and a type,
//! then flags and a 24-bit length; a data frame has the high bit clear and a 31-bit stream id instead.
//! Header blocks (in SYN_STREAM, SYN_REPLY and HEADERS) are a count and length-prefixed name/value pairs,
//! compressed with one zlib stream per direction that lives as long as the session — so the encoder and
//! decoder here are stateful and must see every frame of their direction, in order.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;

/// The protocol version this crate speaks.
pub const VERSION: u16 = 3;
/// FLAG_FIN: the sender will send nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM: the receiver must not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// Frames larger than this are refused (header blocks and data frames here are small; peers send at most 32 KiB
/// of data per frame).
pub const MAX_FRAME_LENGTH: usize = 1 << 24;
/// Decompressed header blocks larger than this are refused (a zlib bomb must not exhaust memory).
const MAX_HEADER_BLOCK: usize = 1 << 20;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Header name/value pairs. Names are lowercase on the wire; several values of one name are joined by NUL.
pub type Headers = Vec<(String, String)>;

/// RST_STREAM status codes (draft 3, 2.6.3).
pub mod rst {
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// INVALID_STREAM: a frame for a stream that is not active.
    pub const INVALID_STREAM: u32 = 2;
    /// REFUSED_STREAM: the stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// CANCEL: the stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u32 = 6;
}

/// One SPDY frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    /// Accepts a stream opened by the peer.
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream { stream_id: u32, status: u32 },
    /// Session settings: (flags, id, value) triples.
    Settings { flags: u8, entries: Vec<(u8, u32, u32)> },
    /// Liveness check; the receiver echoes the peer's pings.
    Ping { id: u32 },
    /// The sender accepts no new streams.
    GoAway { last_good_stream_id: u32, status: u32 },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Flow-control credit.
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Payload for a stream.
    Data { stream_id: u32, flags: u8, data: Bytes },
}

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer speaks another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A frame is larger than [`MAX_FRAME_LENGTH`].
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    /// A frame is shorter than its type requires, or its header block is malformed.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    /// The header block did not (de)compress.
    #[error("header compression: {0}")]
    Compression(String),
}

/// Serializes frames, compressing header blocks with the session's outgoing zlib stream.
pub struct Encoder {
    compress: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A fresh encoder, its zlib stream primed with the SPDY dictionary.
    pub fn new() -> Encoder {
        let mut compress = Compress::new(Compression::default(), true);
        compress
            .set_dictionary(dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        Encoder { compress }
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data { stream_id, flags, data } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                put_flags_length(out, *flags, data.len())?;
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                control(out, SYN_STREAM, *flags, 10 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0); // slot
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                control(out, SYN_REPLY, *flags, 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                control(out, HEADERS, *flags, 4 + block.len())?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, RST_STREAM, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control(out, SETTINGS, *flags, 4 + 8 * entries.len())?;
                out.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    out.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control(out, PING, 0, 4)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control(out, GOAWAY, 0, 8)?;
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, WINDOW_UPDATE, 0, 8)?;
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
        }
        Ok(())
    }

    /// Serializes and compresses a header block, ending with a zlib sync flush so the peer can decode it alone.
    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut plain = BytesMut::new();
        plain.put_u32(headers.len() as u32);
        for (name, value) in headers {
            plain.put_u32(name.len() as u32);
            plain.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            plain.put_u32(value.len() as u32);
            plain.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input: &[u8] = &plain;
        loop {
            out.reserve(input.len() + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            input = &input[(self.compress.total_in() - before) as usize..];
            // Done once all input is consumed and the flush left spare room (so nothing is pending).
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, length: usize) -> Result<(), FrameError> {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    put_flags_length(out, flags, length)
}

fn put_flags_length(out: &mut BytesMut, flags: u8, length: usize) -> Result<(), FrameError> {
    if length >= MAX_FRAME_LENGTH {
        return Err(FrameError::TooLarge(length));
    }
    out.put_u32((u32::from(flags) << 24) | length as u32);
    Ok(())
}

/// Parses frames, decompressing header blocks with the session's incoming zlib stream.
pub struct Decoder {
    decompress: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A fresh decoder.
    pub fn new() -> Decoder {
        Decoder {
            decompress: Decompress::new(true),
        }
    }

    /// Takes one complete frame off the front of `buf`; `Ok(None)` when more bytes are needed. Control frames of
    /// types this protocol does not use (NOOP, CREDENTIAL, unknown) are skipped.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let length = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
            if length >= MAX_FRAME_LENGTH {
                return Err(FrameError::TooLarge(length));
            }
            if buf.len() < 8 + length {
                buf.reserve(8 + length - buf.len());
                return Ok(None);
            }
            let mut frame = buf.split_to(8 + length);
            let word = frame.get_u32();
            let flags = frame[0];
            frame.advance(4);
            if word & 0x8000_0000 == 0 {
                return Ok(Some(Frame::Data {
                    stream_id: word,
                    flags,
                    data: frame.freeze(),
                }));
            }
            let version = ((word >> 16) & 0x7fff) as u16;
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            if let Some(frame) = self.control(word as u16, flags, frame)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut body: BytesMut) -> Result<Option<Frame>, FrameError> {
        let need = |body: &BytesMut, n: usize, what: &'static str| {
            if body.len() < n {
                Err(FrameError::Malformed(what))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            SYN_STREAM => {
                need(&body, 10, "SYN_STREAM")?;
                let stream_id = body.get_u32() & 0x7fff_ffff;
                let associated_to = body.get_u32() & 0x7fff_ffff;
                let priority = body.get_u8() >> 5;
                body.advance(1);
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers: self.header_block(&body)?,
                }
            }
            SYN_REPLY | HEADERS => {
                need(&body, 4, "SYN_REPLY")?;
                let stream_id = body.get_u32() & 0x7fff_ffff;
                let headers = self.header_block(&body)?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                need(&body, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: body.get_u32() & 0x7fff_ffff,
                    status: body.get_u32(),
                }
            }
            SETTINGS => {
                need(&body, 4, "SETTINGS")?;
                let count = body.get_u32() as usize;
                need(&body, count.saturating_mul(8), "SETTINGS")?;
                let entries = (0..count)
                    .map(|_| {
                        let word = body.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, body.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                need(&body, 4, "PING")?;
                Frame::Ping { id: body.get_u32() }
            }
            GOAWAY => {
                need(&body, 4, "GOAWAY")?;
                let last_good_stream_id = body.get_u32() & 0x7fff_ffff;
                // SPDY/2 peers omit the status; treat it as OK.
                let status = if body.len() >= 4 { body.get_u32() } else { 0 };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            WINDOW_UPDATE => {
                need(&body, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: body.get_u32() & 0x7fff_ffff,
                    delta: body.get_u32() & 0x7fff_ffff,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let plain = self.inflate(compressed)?;
        parse_headers(&plain)
    }

    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        while !input.is_empty() {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(FrameError::Malformed("oversized header block"));
            }
            out.reserve(4096);
            let before = self.decompress.total_in();
            let result = self.decompress.decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.decompress.total_in() - before) as usize..];
            match result {
                Ok(Status::Ok | Status::BufError) => {}
                Ok(Status::StreamEnd) => break,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(dictionary())
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(FrameError::Compression(e.to_string())),
            }
        }
        Ok(out)
    }
}

fn parse_headers(mut block: &[u8]) -> Result<Headers, FrameError> {
    const WHAT: &str = "header block";
    let take_u32 = |block: &mut &[u8]| -> Result<usize, FrameError> {
        if block.len() < 4 {
            return Err(FrameError::Malformed(WHAT));
        }
        Ok(block.get_u32() as usize)
    };
    let take_str = |block: &mut &[u8]| -> Result<String, FrameError> {
        let len = take_u32(block)?;
        if block.len() < len {
            return Err(FrameError::Malformed(WHAT));
        }
        let (text, rest) = block.split_at(len);
        *block = rest;
        String::from_utf8(text.to_vec()).map_err(|_| FrameError::Malformed(WHAT))
    };
    let count = take_u32(&mut block)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = take_str(&mut block)?;
        let value = take_str(&mut block)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// The first value of header `name` (names compare case-insensitively; NUL-joined values are split).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.split('\0').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn roundtrip(frames: &[Frame]) {
        let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new());
        let mut wire = BytesMut::new();
        for frame in frames {
            encoder.encode(frame, &mut wire).expect("encode");
        }
        for frame in frames {
            assert_eq!(decoder.decode(&mut wire).expect("decode").as_ref(), Some(frame));
        }
        assert!(wire.is_empty());
    }

    #[test]
    fn every_frame_type_round_trips_through_one_compression_context() {
        roundtrip(&[
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: Vec::new(),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::Headers {
                stream_id: 3,
                flags: 0,
                headers: headers(&[("x", "a\0b")]),
            },
            Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 7 },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 4096,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
        ]);
    }

    #[test]
    fn fixed_frames_match_the_specified_bytes() {
        let mut out = BytesMut::new();
        let mut encoder = Encoder::new();
        encoder.encode(&Frame::Ping { id: 1 }, &mut out).expect("ping");
        assert_eq!(&out[..], &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
        out.clear();
        encoder
            .encode(
                &Frame::Data {
                    stream_id: 5,
                    flags: FLAG_FIN,
                    data: Bytes::from_static(b"hi"),
                },
                &mut out,
            )
            .expect("data");
        assert_eq!(&out[..], &[0, 0, 0, 5, 0x01, 0, 0, 2, b'h', b'i']);
        out.clear();
        encoder
            .encode(
                &Frame::RstStream {
                    stream_id: 3,
                    status: rst::REFUSED_STREAM,
                },
                &mut out,
            )
            .expect("rst");
        assert_eq!(&out[..], &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 3]);
    }

    /// Header blocks as Go's framer (moby/spdystream, used by client-go and containerd) writes them: a zlib
    /// stream whose header names the SPDY dictionary (FDICT, adler32 0xe3c6a7c2), one sync flush per block, the
    /// second block depending on the first. Produced by an independent zlib (level 9, as Go uses).
    #[test]
    fn decodes_header_blocks_compressed_elsewhere() {
        let first: &[u8] = &[
            0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xa6, 0x23, 0x46, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d, 0xcc, 0x85,
            0x16, 0x25, 0xc0, 0x14, 0x9b, 0x92, 0x5f, 0x5a, 0x02, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        let second: &[u8] = &[
            0x02, 0xe5, 0x1c, 0xac, 0x72, 0xa9, 0x45, 0x45, 0x90, 0x32, 0xbb, 0x08, 0x9c, 0x3d, 0x2c, 0x0c, 0x2c, 0x0c,
            0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        let mut wire = BytesMut::new();
        for (id, block) in [(1u32, first), (3, second)] {
            wire.put_u16(0x8003);
            wire.put_u16(SYN_STREAM);
            wire.put_u32(10 + block.len() as u32);
            wire.put_u32(id);
            wire.put_u32(0);
            wire.put_u16(0);
            wire.extend_from_slice(block);
        }
        let mut decoder = Decoder::new();
        let syn = |stream_id, pairs| Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers(pairs),
        };
        assert_eq!(
            decoder.decode(&mut wire).expect("first"),
            Some(syn(1, &[("streamtype", "stdout")]))
        );
        assert_eq!(
            decoder.decode(&mut wire).expect("second"),
            Some(syn(3, &[("streamtype", "stderr"), ("port", "8080")]))
        );
    }

    #[test]
    fn partial_input_waits_and_garbage_is_an_error() {
        let mut encoder = Encoder::new();
        let mut wire = BytesMut::new();
        encoder.encode(&Frame::Ping { id: 9 }, &mut wire).expect("encode");
        let mut partial = BytesMut::from(&wire[..6]);
        assert_eq!(Decoder::new().decode(&mut partial).expect("partial"), None);
        let mut wrong_version = BytesMut::from(&[0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(
            Decoder::new().decode(&mut wrong_version),
            Err(FrameError::Version(2))
        ));
        let mut truncated = BytesMut::from(&[0x80, 0x03, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            Decoder::new().decode(&mut truncated),
            Err(FrameError::Malformed("RST_STREAM"))
        ));
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_takes_the_first_value() {
        let h = headers(&[("StreamType", "stdin"), ("x", "1\u{0}2")]);
        assert_eq!(header(&h, "streamtype"), Some("stdin"));
        assert_eq!(header(&h, "x"), Some("1"));
        assert_eq!(header(&h, "y"), None);
    }
}
