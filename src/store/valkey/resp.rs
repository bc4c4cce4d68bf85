//! RESP2, the subset twostep speaks: commands go out as arrays of bulk
//! strings; replies come in as simple strings, errors, integers, bulk
//! strings, nulls and arrays, within fixed bounds.
//!
//! The state of one user is small, so a reply longer than [`MAX_REPLY`]
//! bytes, nested deeper than [`MAX_DEPTH`] or with more than
//! [`MAX_ELEMENTS`] values in all is refused, and a header that announces
//! one is refused as soon as it is read: nothing a server sends makes the
//! module allocate more than [`MAX_REPLY`] bytes or wait for them.
//!
//! Hand-written rather than a crate's (Cargo.toml says what was measured):
//! this is all of the protocol the client needs, and it is fuzzed
//! (fuzz/fuzz_targets/resp_reply.rs).
#![forbid(unsafe_code)]

/// The most bytes one reply may span, headers included.
pub const MAX_REPLY: usize = 64 * 1024;
/// The deepest nesting of arrays: 1 is a flat array.
pub const MAX_DEPTH: usize = 4;
/// The most values in one reply, counting every array's elements.
pub const MAX_ELEMENTS: usize = 1024;

/// A reply, as RESP2 types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`: an error the server returned as a value. [`super::Client::call`]
    /// turns one at the top into [`super::StoreError::Refused`]; inside an array
    /// it stays a value.
    Error(Vec<u8>),
    /// `:42`
    Integer(i64),
    /// `$3\r\nabc`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`: no value (a missing key, a script's `nil`).
    Nil,
    /// `*2\r\n...`
    Array(Vec<Reply>),
}

/// Why bytes from the server are not a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A value starts with a byte that is no RESP2 type.
    UnknownType(u8),
    /// A line that does not end in CRLF, or has a CR or LF inside.
    BadLine,
    /// A length or an integer that is not one.
    BadNumber,
    /// A bulk string that does not end in CRLF after its length.
    BadBulkEnd,
    /// Longer than [`MAX_REPLY`].
    TooLong,
    /// Deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More than [`MAX_ELEMENTS`] values.
    TooMany,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::UnknownType(b) => write!(f, "a value of unknown type {:?}", *b as char),
            ProtocolError::BadLine => f.write_str("a line not ended by CRLF"),
            ProtocolError::BadNumber => f.write_str("a malformed length or integer"),
            ProtocolError::BadBulkEnd => f.write_str("a bulk string not ended by CRLF"),
            ProtocolError::TooLong => write!(f, "a reply longer than {MAX_REPLY} bytes"),
            ProtocolError::TooDeep => write!(f, "arrays nested deeper than {MAX_DEPTH}"),
            ProtocolError::TooMany => write!(f, "a reply of more than {MAX_ELEMENTS} values"),
        }
    }
}

/// Appends one command, an array of bulk strings, to `out`.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply from the start of `buf`: `Ok(None)` while it is
/// incomplete, else the reply and the bytes it took. Only the first
/// [`MAX_REPLY`] bytes are looked at; a reply that would need more is
/// [`ProtocolError::TooLong`], whether they have arrived or not.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let full = buf.len() >= MAX_REPLY;
    let mut cursor = Cursor {
        buf: buf.get(..MAX_REPLY).unwrap_or(buf),
        pos: 0,
        elements: 0,
    };
    match cursor.value(0)? {
        Some(reply) => Ok(Some((reply, cursor.pos))),
        None if full => Err(ProtocolError::TooLong),
        None => Ok(None),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    elements: usize,
}

/// `Ok(None)` (more bytes are needed) goes up unchanged.
macro_rules! ready {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

impl<'a> Cursor<'a> {
    fn value(&mut self, depth: usize) -> Result<Option<Reply>, ProtocolError> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let line = ready!(self.line());
        Ok(Some(match kind {
            b'+' => Reply::Simple(line.to_vec()),
            b'-' => Reply::Error(line.to_vec()),
            b':' => Reply::Integer(integer(line)?),
            b'$' => match length(line, MAX_REPLY, ProtocolError::TooLong)? {
                None => Reply::Nil,
                Some(len) => Reply::Bulk(ready!(self.bulk(len))),
            },
            b'*' => match length(line, MAX_ELEMENTS, ProtocolError::TooMany)? {
                None => Reply::Nil,
                Some(count) => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(ProtocolError::TooDeep);
                    }
                    self.elements += count;
                    if self.elements > MAX_ELEMENTS {
                        return Err(ProtocolError::TooMany);
                    }
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(ready!(self.value(depth + 1)));
                    }
                    Reply::Array(items)
                }
            },
            other => return Err(ProtocolError::UnknownType(other)),
        }))
    }

    /// The bytes up to the next CRLF, which is consumed.
    fn line(&mut self) -> Result<Option<&'a [u8]>, ProtocolError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // A CR inside is wrong whatever follows; a lone one at the end
            // may be the first half of the CRLF.
            return match rest.iter().position(|&b| b == b'\r') {
                Some(cr) if cr + 1 < rest.len() => Err(ProtocolError::BadLine),
                _ => Ok(None),
            };
        };
        match rest[..end].split_last() {
            Some((b'\r', line)) if !line.contains(&b'\r') => {
                self.pos += end + 1;
                Ok(Some(line))
            }
            _ => Err(ProtocolError::BadLine),
        }
    }

    fn bulk(&mut self, len: usize) -> Result<Option<Vec<u8>>, ProtocolError> {
        // A bulk string that cannot fit is refused before its bytes arrive.
        if self.pos + len + 2 > MAX_REPLY {
            return Err(ProtocolError::TooLong);
        }
        let Some(data) = self.buf.get(self.pos..self.pos + len + 2) else {
            // Its end so far must not already be wrong.
            return match self.buf.get(self.pos + len..) {
                Some([b, ..]) if *b != b'\r' => Err(ProtocolError::BadBulkEnd),
                _ => Ok(None),
            };
        };
        let (body, end) = data.split_at(len);
        if end != b"\r\n" {
            return Err(ProtocolError::BadBulkEnd);
        }
        self.pos += len + 2;
        Ok(Some(body.to_vec()))
    }
}

/// `-1` (none) or a count up to `max` (beyond it: `over`).
fn length(line: &[u8], max: usize, over: ProtocolError) -> Result<Option<usize>, ProtocolError> {
    if line == b"-1" {
        return Ok(None);
    }
    let n = digits(line)?;
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(over),
    }
}

fn integer(line: &[u8]) -> Result<i64, ProtocolError> {
    match line.split_first() {
        Some((b'-', rest)) => {
            let n = digits(rest)?;
            0i64.checked_sub_unsigned(n).ok_or(ProtocolError::BadNumber)
        }
        _ => i64::try_from(digits(line)?).map_err(|_| ProtocolError::BadNumber),
    }
}

/// One or more ASCII digits, no sign, no spaces; at most 19 so it fits.
fn digits(s: &[u8]) -> Result<u64, ProtocolError> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::BadNumber);
    }
    Ok(s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{bytes:?}");
        reply
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&[b"EVALSHA", b"", b"12345678901"], &mut out);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nEVALSHA\r\n$0\r\n\r\n$11\r\n12345678901\r\n"
        );
    }

    #[test]
    fn every_reply_type() {
        use Reply::*;
        let table: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Simple(b"OK".to_vec())),
            (b"+\r\n", Simple(vec![])),
            (b"-NOPERM no\r\n", Error(b"NOPERM no".to_vec())),
            (b":0\r\n", Integer(0)),
            (b":-42\r\n", Integer(-42)),
            (b":9223372036854775807\r\n", Integer(i64::MAX)),
            (b":-9223372036854775808\r\n", Integer(i64::MIN)),
            (b"$0\r\n\r\n", Bulk(vec![])),
            (b"$4\r\na\r\nb\r\n", Bulk(b"a\r\nb".to_vec())),
            (b"$-1\r\n", Nil),
            (b"*-1\r\n", Nil),
            (b"*0\r\n", Array(vec![])),
            (
                b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n$-1\r\n",
                Array(vec![Integer(1), Bulk(b"x".to_vec()), Array(vec![Nil])]),
            ),
        ];
        for (bytes, want) in table {
            assert_eq!(&whole(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        let bytes = b"*3\r\n:1\r\n$5\r\nhello\r\n*2\r\n+OK\r\n-ERR x\r\n";
        for end in 0..bytes.len() {
            assert_eq!(parse(&bytes[..end]), Ok(None), "{:?}", &bytes[..end]);
        }
        whole(bytes);
    }

    #[test]
    fn a_second_reply_is_left_in_the_buffer() {
        assert_eq!(parse(b":1\r\n:2\r\n"), Ok(Some((Reply::Integer(1), 4))));
    }

    #[test]
    fn garbage_is_refused() {
        use ProtocolError::*;
        let table: &[(&[u8], ProtocolError)] = &[
            (b"HTTP/1.1 400\r\n", UnknownType(b'H')),
            (b"%1\r\n", UnknownType(b'%')),
            (b"+OK\n", BadLine),
            (b"+O\rK\r\n", BadLine),
            (b"+O\rK", BadLine),
            (b":\r\n", BadNumber),
            (b":+1\r\n", BadNumber),
            (b": 1\r\n", BadNumber),
            (b":1.5\r\n", BadNumber),
            (b":9223372036854775808\r\n", BadNumber),
            (b":-9223372036854775809\r\n", BadNumber),
            (b":99999999999999999999\r\n", BadNumber),
            (b"$-2\r\n", BadNumber),
            (b"$3\r\nabcd\r\n", BadBulkEnd),
            (b"$3\r\nabc\n\r", BadBulkEnd),
            (b"$3\r\nabcX", BadBulkEnd),
            (b"*-2\r\n", BadNumber),
        ];
        for (bytes, want) in table {
            assert_eq!(parse(bytes), Err(*want), "{bytes:?}");
        }
    }

    #[test]
    fn announced_sizes_past_the_bounds_are_refused_before_the_bytes() {
        use ProtocolError::*;
        assert_eq!(parse(b"$65537\r\n"), Err(TooLong));
        assert_eq!(parse(b"$65530\r\n"), Err(TooLong));
        assert_eq!(parse(b"$9223372036854775807\r\n"), Err(TooLong));
        assert_eq!(parse(b"*1025\r\n"), Err(TooMany));
        assert_eq!(parse(b"*4294967296\r\n"), Err(TooMany));
        // Elements count across arrays.
        let mut many = b"*2\r\n*1000\r\n".to_vec();
        many.extend(b":1\r\n".repeat(1000));
        many.extend(b"*1000\r\n");
        assert_eq!(parse(&many), Err(TooMany));
    }

    #[test]
    fn depth_is_bounded() {
        assert!(matches!(
            whole(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Reply::Array(_)
        ));
        assert_eq!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
            Err(ProtocolError::TooDeep)
        );
        // A nil array is a value, not a level.
        assert!(matches!(
            whole(b"*1\r\n*1\r\n*1\r\n*1\r\n*-1\r\n"),
            Reply::Array(_)
        ));
    }

    #[test]
    fn a_reply_that_does_not_end_within_the_bound_is_too_long() {
        let mut endless = b"+".to_vec();
        endless.resize(MAX_REPLY - 1, b'a');
        assert_eq!(parse(&endless), Ok(None));
        endless.push(b'a');
        assert_eq!(parse(&endless), Err(ProtocolError::TooLong));
        let mut bulk = format!("${}\r\n", MAX_REPLY - 8).into_bytes();
        bulk.resize(MAX_REPLY + 100, b'a');
        assert_eq!(parse(&bulk), Err(ProtocolError::TooLong));
        // The largest bulk string that fits, exactly.
        let len = MAX_REPLY - 10;
        let mut fits = format!("${len}\r\n").into_bytes();
        fits.resize(fits.len() + len, b'a');
        fits.extend(b"\r\n");
        assert_eq!(fits.len(), MAX_REPLY);
        assert!(matches!(whole(&fits), Reply::Bulk(b) if b.len() == len));
    }
}
