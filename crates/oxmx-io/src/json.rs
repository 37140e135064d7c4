//! A small, strict JSON reader for safetensors headers and index files. It reads only
//! what oxmx needs (objects, arrays, strings, non-negative integers) and skips other values
//! with an explicit stack bounded by [`JSON_MAX_DEPTH`] — never recursion on file depth.
//! Also the JSON string writer used by the safetensors writer.

use crate::error::{fmt_err, Result};
use crate::limits::{JSON_MAX_DEPTH, MAX_NAME_LEN};

pub struct Json<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Json<'a> {
    pub fn new(s: &'a [u8]) -> Json<'a> {
        Json { s, pos: 0 }
    }

    fn err(&self, what: &str) -> crate::Error {
        fmt_err(format!("invalid JSON at byte {}: {what}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    /// After the whole document: only whitespace may follow.
    pub fn end(&mut self) -> Result<()> {
        self.ws();
        if self.pos == self.s.len() {
            Ok(())
        } else {
            Err(self.err("trailing characters after the JSON value"))
        }
    }

    /// Whether the next value is `c` (without consuming it).
    pub fn next_is(&mut self, c: u8) -> bool {
        self.ws();
        self.peek() == Some(c)
    }

    fn hex4(&mut self) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self
                .peek()
                .ok_or_else(|| self.err("truncated \\u escape"))?;
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("bad \\u escape"))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// A string, decoded. At most `MAX_NAME_LEN` bytes unless `max` says otherwise.
    pub fn string_max(&mut self, max: u64) -> Result<String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("unterminated escape"))?;
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("bad low surrogate"));
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            } else if (0xDC00..0xE000).contains(&cp) {
                                return Err(self.err("unpaired surrogate"));
                            }
                            let ch =
                                char::from_u32(cp).ok_or_else(|| self.err("bad code point"))?;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(self.err("unknown escape")),
                    }
                }
                0..=0x1F => return Err(self.err("control character in string")),
                _ => out.push(c),
            }
            if out.len() as u64 > max {
                return Err(self.err(&format!("string longer than {max} bytes")));
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"))
    }

    pub fn string(&mut self) -> Result<String> {
        self.string_max(MAX_NAME_LEN)
    }

    /// A non-negative integer that fits in `u64` (no sign, fraction or exponent).
    pub fn u64(&mut self) -> Result<u64> {
        self.ws();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| self.err("integer does not fit in 64 bits"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("expected a non-negative integer"));
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(self.err("expected an integer, found a fraction or exponent"));
        }
        Ok(v)
    }

    /// Iterate an object: `f` is called with each key and must consume its value.
    /// Duplicate keys are the caller's concern.
    pub fn object(&mut self, mut f: impl FnMut(&mut Self, String) -> Result<()>) -> Result<()> {
        self.expect(b'{')?;
        if self.next_is(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            f(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    /// Iterate an array: `f` must consume each element. At most `max` elements.
    pub fn array(&mut self, max: usize, mut f: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.expect(b'[')?;
        if self.next_is(b']') {
            self.pos += 1;
            return Ok(());
        }
        let mut n = 0usize;
        loop {
            n += 1;
            if n > max {
                return Err(self.err(&format!("array longer than {max} elements")));
            }
            f(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("unexpected token"))
        }
    }

    fn number(&mut self) -> Result<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = |j: &mut Self| {
            let s = j.pos;
            while let Some(b'0'..=b'9') = j.peek() {
                j.pos += 1;
            }
            j.pos > s
        };
        if !digits(self) {
            return Err(self.err("bad number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.err("bad number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.err("bad number"));
            }
        }
        debug_assert!(self.pos > start);
        Ok(())
    }

    /// Skip any value, iteratively: a stack of open containers, at most
    /// `JSON_MAX_DEPTH` deep.
    pub fn skip_value(&mut self) -> Result<()> {
        // Each stack entry: b'{' or b'['; plus whether a value was just completed.
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // Expect a value here.
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    if stack.len() >= JSON_MAX_DEPTH {
                        return Err(self.err(&format!("nesting deeper than {JSON_MAX_DEPTH}")));
                    }
                    stack.push(b'{');
                    if self.next_is(b'}') {
                        self.pos += 1;
                        stack.pop();
                    } else {
                        self.string_max(u64::MAX)?;
                        self.expect(b':')?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    if stack.len() >= JSON_MAX_DEPTH {
                        return Err(self.err(&format!("nesting deeper than {JSON_MAX_DEPTH}")));
                    }
                    stack.push(b'[');
                    if self.next_is(b']') {
                        self.pos += 1;
                        stack.pop();
                    } else {
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string_max(u64::MAX)?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.err("expected a value")),
            }
            // A value is complete: close containers or move to the next element.
            loop {
                let Some(&top) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match (top, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if top == b'{' {
                            self.string_max(u64::MAX)?;
                            self.expect(b':')?;
                        }
                        break;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        stack.pop();
                    }
                    _ => return Err(self.err("expected ',' or a closing bracket")),
                }
            }
        }
    }
}

/// Append `s` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_escapes() {
        let mut j = Json::new(br#" "a\"b\\c\u00e9\ud83d\ude00\n" "#);
        assert_eq!(j.string().unwrap(), "a\"b\\cé😀\n");
        j.end().unwrap();
        for bad in [&br#""\ud83d""#[..], br#""\x""#, b"\"abc", b"\"a\x01\""] {
            assert!(Json::new(bad).string().is_err());
        }
        let mut s = String::new();
        write_string(&mut s, "q\"\\\n\u{1}é");
        assert_eq!(Json::new(s.as_bytes()).string().unwrap(), "q\"\\\n\u{1}é");
    }

    #[test]
    fn skip_is_iterative_and_bounded() {
        let ok = br#"{"a": [1, -2.5e3, true, null, {"b": []}, "x"], "c": {}}"#;
        let mut j = Json::new(ok);
        j.skip_value().unwrap();
        j.end().unwrap();
        let deep = "[".repeat(100_000);
        assert!(Json::new(deep.as_bytes()).skip_value().is_err());
        let fine = format!(
            "{}{}",
            "[".repeat(JSON_MAX_DEPTH),
            "]".repeat(JSON_MAX_DEPTH)
        );
        Json::new(fine.as_bytes()).skip_value().unwrap();
        for bad in [
            &b"[1,]"[..],
            b"{\"a\" 1}",
            b"[1 2]",
            b"{,}",
            b"-",
            b"01x",
            b"[",
            b"{\"a\":1,",
        ] {
            let mut j = Json::new(bad);
            assert!(j.skip_value().and_then(|_| j.end()).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn integers() {
        assert_eq!(Json::new(b" 18446744073709551615").u64().unwrap(), u64::MAX);
        assert!(Json::new(b"18446744073709551616").u64().is_err());
        assert!(Json::new(b"-1").u64().is_err());
        assert!(Json::new(b"1.5").u64().is_err());
    }
}
