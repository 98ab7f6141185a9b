//! The host side of the guest channel's framing: bytes as they arrive from a socket, split into
//! JSON lines of at most a bound, then decoded into [`GuestMsg`]. Pure, so that what a hostile
//! or broken guest can send (any bytes, in any chunks) is fuzzed without a VM.
//!
//! What it is not: the socket handling and the timeouts (`machine`), nor what a message means
//! (the caller's protocol logic).

use kmatrix_proto::GuestMsg;

/// What the decoder found in the bytes pushed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, from its first `{` (the 8250 may carry stray bytes before it, e.g. a
    /// NUL at UART init), trailing whitespace trimmed. Lines without a `{` are dropped.
    Line(String),
    /// A line passed the bound before its newline: the channel is hostile or broken and ends.
    TooLong {
        /// The bound in bytes, as given to [`LineDecoder::new`].
        max: usize,
    },
}

/// Splits a byte stream into lines, holding at most `max` bytes of an unfinished line.
#[derive(Debug)]
pub struct LineDecoder {
    max: usize,
    buf: Vec<u8>,
    /// Set once a line was too long: nothing more is framed.
    broken: bool,
}

impl LineDecoder {
    /// A decoder that gives up on a line longer than `max` bytes.
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder { max, buf: Vec::new(), broken: false }
    }

    /// Feed `chunk`; complete lines (and a [`Frame::TooLong`], after which the decoder stops)
    /// are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Frame>) {
        while !self.broken && !chunk.is_empty() {
            match chunk.iter().position(|&c| c == b'\n') {
                Some(nl) if self.buf.len() + nl <= self.max => {
                    self.buf.extend_from_slice(&chunk[..nl]);
                    chunk = &chunk[nl + 1..];
                    let line = std::mem::take(&mut self.buf);
                    out.extend(frame(&line).map(Frame::Line));
                }
                None if self.buf.len() + chunk.len() <= self.max => {
                    self.buf.extend_from_slice(chunk);
                    chunk = &[];
                }
                _ => {
                    self.broken = true;
                    self.buf = Vec::new();
                    out.push(Frame::TooLong { max: self.max });
                }
            }
        }
    }

    /// The end of the stream: a last line without its newline still counts.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.broken {
            return None;
        }
        let line = std::mem::take(&mut self.buf);
        frame(&line).map(Frame::Line)
    }

    /// Bytes of an unfinished line held now (never more than the bound).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// One raw line as a JSON candidate: from its first `{`, trimmed; `None` when there is none.
fn frame(raw: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(raw);
    let line = line.trim_end();
    let start = line.find('{')?;
    Some(line[start..].to_string())
}

/// Decode one framed line.
pub fn decode(line: &str) -> Result<GuestMsg, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, chunks: &[&[u8]]) -> (Vec<Frame>, Option<Frame>) {
        let mut d = LineDecoder::new(max);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out);
            assert!(d.pending() <= max);
        }
        (out, d.finish())
    }

    #[test]
    fn lines_across_chunks_and_stray_bytes() {
        let (out, last) = lines(64, &[b"\0{\"type\":", b"\"bye\"}\r\nnoise\n{\"a\"", b":1}\n{\"tail\":1}"]);
        assert_eq!(out, [Frame::Line("{\"type\":\"bye\"}".into()), Frame::Line("{\"a\":1}".into())]);
        assert_eq!(last, Some(Frame::Line("{\"tail\":1}".into())));
        assert_eq!(decode("{\"type\":\"bye\"}").unwrap(), GuestMsg::Bye);
        assert!(decode("{\"type\":\"nope\"}").is_err());
    }

    #[test]
    fn a_line_over_the_bound_ends_the_channel() {
        // Exactly the bound is a line; one byte more is not, in one chunk or many.
        let (out, _) = lines(8, &[b"{2345678\n"]);
        assert_eq!(out, [Frame::Line("{2345678".into())]);
        for chunks in [&[&b"{23456789\n{}\n"[..]][..], &[b"{234", b"56789", b"\n{}\n"]] {
            let (out, last) = lines(8, chunks);
            assert_eq!(out, [Frame::TooLong { max: 8 }], "{chunks:?}");
            assert_eq!(last, None);
        }
    }
}
