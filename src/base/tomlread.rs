//! Reading the config and the secret files from toml's own parse tree
//! (`toml::de::DeTable`), without serde.
//!
//! Every login reads both files, and the pages of code it runs are a large
//! part of its cost (docs/performance.md). serde's derived deserializers run
//! the code of every key of a structure whatever the file sets; these
//! readers run the code of the keys present only, so a login with a short
//! config touches a few pages of it (157 KB of code a right code ran, 53
//! pages, against 167 KB and 57 with serde). The messages are ours: each
//! names the key (`totp.digits`), says what is allowed, and carries the
//! line it is on. Writing stays on serde (`toml::to_string`), off the
//! login path.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What went wrong, and the byte offset in the text it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub at: Option<usize>,
    pub message: String,
}

impl Bad {
    fn at(at: usize, message: String) -> Bad {
        Bad {
            at: Some(at),
            message,
        }
    }

    /// The 1-based line of the offset in `text`, and the message.
    pub fn into_line(self, text: &str) -> (Option<usize>, String) {
        let line = self
            .at
            .map(|at| text[..at.min(text.len())].matches('\n').count() + 1);
        (line, self.message)
    }
}

/// A parsed document: its root table.
pub struct Doc<'i> {
    root: DeTable<'i>,
}

impl<'i> Doc<'i> {
    /// Parses `text`; a syntax error is toml's own message and offset.
    pub fn parse(text: &'i str) -> Result<Doc<'i>, Bad> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Doc {
                root: root.into_inner(),
            }),
            Err(e) => Err(Bad {
                at: e.span().map(|s| s.start),
                message: e.message().trim().to_string(),
            }),
        }
    }

    pub fn root(&self) -> Table<'_, 'i> {
        Table {
            name: String::new(),
            table: Some(&self.root),
            at: 0,
        }
    }
}

/// A table of the document, or an absent one (all of whose keys are
/// absent), and its dotted name for messages.
pub struct Table<'a, 'i> {
    name: String,
    table: Option<&'a DeTable<'i>>,
    at: usize,
}

impl<'a, 'i> Table<'a, 'i> {
    fn key_name(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    /// Runs `read` on each key present (in key order); `read` returns
    /// false for a key it does not know, which is then refused, naming
    /// `known` ("secret, method, ..."). A key absent costs nothing: the
    /// login's code is the code of the keys the file sets. `known` is one
    /// string, not a list: a list of `&str` is a table of pointers that
    /// ld.so relocates at every load of the module, 16 bytes a key
    /// (docs/performance.md, "What a load pays for").
    pub fn each(
        &self,
        known: &str,
        mut read: impl FnMut(&str, &Value<'a, 'i>) -> Result<bool, Bad>,
    ) -> Result<(), Bad> {
        let Some(table) = self.table else {
            return Ok(());
        };
        for (k, v) in table.iter() {
            let value = self.value(k.get_ref(), v);
            if !value.read(|value| read(k.get_ref(), value))? {
                return Err(self.unknown(k.get_ref(), k.span().start, known));
            }
        }
        Ok(())
    }

    fn unknown(&self, key: &str, at: usize, known: &str) -> Bad {
        let message = format!(
            "{}: unknown key; the keys here are {known}",
            self.key_name(key)
        );
        Bad::at(at, message)
    }

    /// The table's dotted name (`lockout.tiers[1]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A message about the table as a whole, placed at its start.
    pub fn bad(&self, message: impl std::fmt::Display) -> Bad {
        Bad::at(self.at, message.to_string())
    }

    /// The value of `key`, if it is there.
    pub fn get(&self, key: &str) -> Option<Value<'a, 'i>> {
        let table = self.table?;
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key)?;
        Some(self.value(k.get_ref(), v))
    }

    /// The entry `key = v` of this table, named for messages.
    fn value(&self, key: &str, v: &'a Spanned<DeValue<'i>>) -> Value<'a, 'i> {
        Value {
            name: self.key_name(key),
            value: v.get_ref(),
            at: v.span().start,
        }
    }
}

/// One value, its dotted name and offset.
pub struct Value<'a, 'i> {
    name: String,
    value: &'a DeValue<'i>,
    at: usize,
}

impl<'a, 'i> Value<'a, 'i> {
    /// Runs `read` on this value; a message without a key of its own gets
    /// this value's name and offset.
    fn read<T>(&self, read: impl FnOnce(&Value<'a, 'i>) -> Result<T, Bad>) -> Result<T, Bad> {
        read(self).map_err(|bad| match bad.at {
            Some(_) => bad,
            None => Bad::at(self.at, format!("{}: {}", self.name, bad.message)),
        })
    }

    fn wrong_type(&self, expected: &str) -> Bad {
        let found = match self.value {
            DeValue::String(s) if s.len() <= 40 => format!("string {s:?}"),
            DeValue::Integer(i) => format!("integer {i}"),
            DeValue::Boolean(b) => format!("boolean {b}"),
            other => other.type_str().to_string(),
        };
        Bad {
            at: None,
            message: format!("invalid type: {found}, expected {expected}"),
        }
    }

    pub fn str(&self) -> Result<&'a str, Bad> {
        match self.value {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    pub fn bool(&self) -> Result<bool, Bad> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("true or false")),
        }
    }

    pub fn int(&self) -> Result<i64, Bad> {
        match self.value {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| message(format!("{i} is out of range"))),
            _ => Err(self.wrong_type("an integer")),
        }
    }

    /// An integer in `lo..=hi`; `what` says what is allowed.
    pub fn int_in(&self, lo: i64, hi: i64, what: &str) -> Result<i64, Bad> {
        let v = self.int()?;
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(message(format!("{v} is out of range: {what}")))
        }
    }

    /// A TOML date-time as its RFC 3339 text, or a string.
    pub fn datetime_text(&self) -> Result<String, Bad> {
        match self.value {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Datetime(d) => Ok(d.to_string()),
            _ => Err(self.wrong_type("a date")),
        }
    }

    /// One of `names`' strings, as its value.
    pub fn one_of<T: Copy>(&self, names: &[(&str, T)]) -> Result<T, Bad> {
        let s = self.str()?;
        if let Some((_, v)) = names.iter().find(|(n, _)| *n == s) {
            return Ok(*v);
        }
        let mut m = format!("{s:?} is not one of ");
        for (i, (n, _)) in names.iter().enumerate() {
            let _ = write!(m, "{}\"{n}\"", if i == 0 { "" } else { ", " });
        }
        Err(message(m))
    }

    /// Each element of an array, read by `read` (an element's error is at
    /// the element's line).
    pub fn array<T>(
        &self,
        mut read: impl FnMut(&Value<'a, 'i>) -> Result<T, Bad>,
    ) -> Result<Vec<T>, Bad> {
        let DeValue::Array(items) = self.value else {
            return Err(self.wrong_type("an array"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Value {
                    name: format!("{}[{}]", self.name, i + 1),
                    value: item.get_ref(),
                    at: item.span().start,
                }
                .read(&mut read)
            })
            .collect()
    }

    pub fn table(&self) -> Result<Table<'a, 'i>, Bad> {
        match self.value {
            DeValue::Table(t) => Ok(Table {
                name: self.name.clone(),
                table: Some(t),
                at: self.at,
            }),
            _ => Err(Bad::at(
                self.at,
                format!("{}: {}", self.name, self.wrong_type("a table").message),
            )),
        }
    }
}

/// A message about the value being read, which the caller
/// ([`Table::each`], [`Value::array`]) places at the value and leads with
/// its name.
pub fn message(message: impl Into<String>) -> Bad {
    Bad {
        at: None,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(text: &str) -> Result<Option<i64>, (Option<usize>, String)> {
        let doc = Doc::parse(text).map_err(|b| b.into_line(text))?;
        let mut digits = None;
        let run = |digits: &mut Option<i64>| {
            doc.root().each("totp", |key, v| {
                if key != "totp" {
                    return Ok(false);
                }
                v.table()?.each("digits", |key, v| {
                    if key != "digits" {
                        return Ok(false);
                    }
                    *digits = Some(v.int_in(6, 8, "6 to 8")?);
                    Ok(true)
                })?;
                Ok(true)
            })
        };
        run(&mut digits).map_err(|b| b.into_line(text))?;
        Ok(digits)
    }

    #[test]
    fn values_errors_and_their_lines() {
        // (document, the value or (line, words of the message))
        type Want = Result<Option<i64>, (usize, &'static [&'static str])>;
        let table: &[(&str, Want)] = &[
            ("", Ok(None)),
            ("[totp]\n", Ok(None)),
            ("[totp]\ndigits = 7\n", Ok(Some(7))),
            ("totp.digits = 0x8\n", Ok(Some(8))),
            ("totp = {digits = 6}\n", Ok(Some(6))),
            (
                "[totp]\ndigits = 1_0\n",
                Err((2, &["totp.digits", "10 is out"])),
            ),
            ("[totp]\ndigits = -6\n", Err((2, &["totp.digits", "-6"]))),
            (
                "[totp]\n\ndigits = \"6\"\n",
                Err((3, &["totp.digits", "invalid type: string \"6\""])),
            ),
            (
                "[totp]\ndigits = 9999999999999999999\n",
                Err((2, &["totp.digits"])),
            ),
            (
                "\n[totp]\ndigit = 6\n",
                Err((3, &["totp.digit", "unknown key", "digits"])),
            ),
            (
                "\n\nother = 1\n",
                Err((3, &["other", "unknown key", "totp"])),
            ),
            ("totp = 1\n", Err((1, &["totp", "expected a table"]))),
            ("[totp\n", Err((1, &[]))),
            ("[totp]\ndigits = 6\ndigits = 7\n", Err((3, &[]))),
        ];
        for (doc, want) in table {
            match (digits(doc), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{doc:?}"),
                (Err((line, message)), Err((want_line, words))) => {
                    assert_eq!(line, Some(*want_line), "{doc:?}: {message}");
                    for w in *words {
                        assert!(message.contains(w), "{doc:?}: {message:?} lacks {w:?}");
                    }
                }
                (got, _) => panic!("{doc:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn arrays_enums_and_types() {
        let text = "list = [\n  \"a\",\n  \"c\",\n]\nb = true\n";
        let doc = Doc::parse(text).unwrap();
        let root = doc.root();
        let abc = [("a", 1), ("b", 2)];
        let list = root.get("list").unwrap();
        let (line, m) = list
            .read(|v| v.array(|e| e.one_of(&abc)))
            .unwrap_err()
            .into_line(text);
        assert_eq!(line, Some(3));
        assert!(
            m.starts_with("list[2]: \"c\" is not one of \"a\", \"b\""),
            "{m}"
        );
        let b = root.get("b").unwrap();
        assert_eq!(b.bool(), Ok(true));
        let m = b.read(Value::str).unwrap_err().message;
        assert_eq!(m, "b: invalid type: boolean true, expected a string");
        assert!(root.get("absent").is_none());
    }
}
