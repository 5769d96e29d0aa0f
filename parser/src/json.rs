//! JSON-array (exec form) detection with the semantics of Go's `encoding/json` as BuildKit uses
//! it: the whole text must be valid JSON (nesting depth at most 10 000, trailing whitespace
//! allowed); a valid array of strings is exec form; a valid array holding anything else is an
//! error; everything else (invalid JSON, numbers out of `f64` range) falls back to shell form.
//! Lone UTF-16 surrogates in `\u` escapes become U+FFFD, as in Go.

/// Outcome of looking at an instruction's arguments as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonArgs {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Valid JSON array with a non-string element: BuildKit rejects the instruction.
    NotStrings,
    /// Not JSON (or not an array): use the shell/whitespace form.
    NotJson,
}

const MAX_DEPTH: usize = 10_000;

pub(crate) fn parse_json_args(rest: &str) -> JsonArgs {
    let text = rest.trim_start();
    if !text.starts_with('[') {
        return JsonArgs::NotJson;
    }
    let mut parser = JsonParser { bytes: text.as_bytes(), text, pos: 0, range_error: false };
    match parser.top_level_array() {
        Some(elements) if !parser.range_error => match elements {
            Some(strings) => JsonArgs::Strings(strings),
            None => JsonArgs::NotStrings,
        },
        _ => JsonArgs::NotJson,
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    range_error: bool,
}

#[derive(Clone, Copy)]
enum Frame {
    Array,
    Object,
}

impl JsonParser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `Some(Some(strings))` for an all-string array, `Some(None)` for a valid array with other
    /// elements, `None` for invalid JSON.
    fn top_level_array(&mut self) -> Option<Option<Vec<String>>> {
        self.skip_ws();
        if !self.eat(b'[') {
            return None;
        }
        let mut strings = Some(Vec::new());
        self.skip_ws();
        if !self.eat(b']') {
            loop {
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&b'"') {
                    let s = self.string()?;
                    if let Some(list) = strings.as_mut() {
                        list.push(s);
                    }
                } else {
                    self.value(1)?;
                    strings = None;
                }
                self.skip_ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return None;
            }
        }
        self.skip_ws();
        (self.pos == self.bytes.len()).then_some(strings)
    }

    /// Validates one value of any kind without recursion; `depth` counts enclosing containers.
    fn value(&mut self, depth: usize) -> Option<()> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // Expect a value.
            self.skip_ws();
            match *self.bytes.get(self.pos)? {
                b'[' | b'{' => {
                    let frame = if self.bytes[self.pos] == b'[' { Frame::Array } else { Frame::Object };
                    self.pos += 1;
                    if depth + stack.len() + 1 > MAX_DEPTH {
                        return None;
                    }
                    stack.push(frame);
                    self.skip_ws();
                    let close = match frame {
                        Frame::Array => b']',
                        Frame::Object => b'}',
                    };
                    if self.eat(close) {
                        stack.pop();
                    } else {
                        if let Frame::Object = frame {
                            self.object_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                _ => self.number()?,
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(frame) = stack.last().copied() else { return Some(()) };
                self.skip_ws();
                if self.eat(b',') {
                    if let Frame::Object = frame {
                        self.object_key()?;
                    }
                    break;
                }
                let close = match frame {
                    Frame::Array => b']',
                    Frame::Object => b'}',
                };
                if self.eat(close) {
                    stack.pop();
                    continue;
                }
                return None;
            }
        }
    }

    fn object_key(&mut self) -> Option<()> {
        self.skip_ws();
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.string()?;
        self.skip_ws();
        self.eat(b':').then_some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.eat(b'-');
        match self.bytes.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            if !self.bytes.get(self.pos)?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !self.bytes.get(self.pos)?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        let parsed: f64 = self.text[start..self.pos].parse().ok()?;
        if parsed.is_infinite() {
            self.range_error = true;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let esc = *self.bytes.get(self.pos)?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            out.push(self.surrogate_aware(first));
                        }
                        _ => return None,
                    }
                }
                _ => return None, // control character
            }
        }
    }

    /// Combines a high surrogate with a following `\uDC00..DFFF`; lone surrogates become U+FFFD.
    fn surrogate_aware(&mut self, first: u32) -> char {
        if (0xD800..0xDC00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            if let Some(second) = self.hex4()
                && (0xDC00..0xE000).contains(&second)
            {
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return char::from_u32(code).unwrap_or('\u{fffd}');
            }
            self.pos = save;
        }
        char::from_u32(first).unwrap_or('\u{fffd}')
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exec_form() {
        assert_eq!(
            parse_json_args(r#" ["a", "b\u00e9\n"] "#),
            JsonArgs::Strings(vec!["a".into(), "b\u{e9}\n".into()])
        );
        assert_eq!(parse_json_args("[]"), JsonArgs::Strings(vec![]));
        assert_eq!(parse_json_args(r#"["a", ["b"]]"#), JsonArgs::NotStrings);
        assert_eq!(parse_json_args(r#"["a", {"k": [1, null]}]"#), JsonArgs::NotStrings);
        assert_eq!(parse_json_args(r#"["a" "b"]"#), JsonArgs::NotJson);
        assert_eq!(parse_json_args("['a']"), JsonArgs::NotJson);
        assert_eq!(parse_json_args(r#"["a"] x"#), JsonArgs::NotJson);
        assert_eq!(parse_json_args("[1e400]"), JsonArgs::NotJson);
        assert_eq!(parse_json_args(r#"["\ud800x"]"#), JsonArgs::Strings(vec!["\u{fffd}x".into()]));
        assert_eq!(parse_json_args(r#"["\ud83d\ude00"]"#), JsonArgs::Strings(vec!["\u{1f600}".into()]));
        let deep = format!("[{}{}]", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(parse_json_args(&deep), JsonArgs::NotJson);
        let ok_deep = format!("[{}{}]", "[".repeat(500), "]".repeat(500));
        assert_eq!(parse_json_args(&ok_deep), JsonArgs::NotStrings);
    }
}
