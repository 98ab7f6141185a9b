//! Parsing an event's `format` file into its fields.
//!
//! Each field line reads `field:<decl>;\toffset:<n>;\tsize:<n>;\tsigned:<0|1>;`, where `<decl>`
//! is a C declaration whose last identifier is the field name (`const char * filename`,
//! `char comm[16]`, `__data_loc char[] name`). Scenarios compare the parsed fields, so a line that
//! looks like a field but does not parse is an error, not a skipped field.

use serde::Serialize;

/// A `format` file that does not parse, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// An `ID:` line whose value is not a number (the line).
    #[error("bad ID line {0:?}")]
    Id(String),
    /// A `field:` line that does not parse: the line, and what is wrong with it.
    #[error("bad field line {line:?}: {detail}")]
    Field {
        /// The line, trimmed.
        line: String,
        /// What is wrong with it.
        detail: FieldError,
    },
    /// No `name:` or no `ID:` line: not a format file.
    #[error("format has no name: or ID: line")]
    NoName,
}

/// What is wrong with a `field:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A `;`-separated part without `key:value`.
    #[error("no ':' in {0:?}")]
    NoColon(String),
    /// `offset`, `size` or the like whose value is not a number.
    #[error("{key}:{value}: {source}")]
    Number {
        /// The key (`offset`, `size`).
        key: String,
        /// The value as written.
        value: String,
        /// Why it is not a number.
        source: std::num::ParseIntError,
    },
    /// One of the four parts every field line has is absent.
    #[error("missing field, offset, size or signed")]
    Missing,
    /// The declaration has no C name after its type.
    #[error("no name in {0:?}")]
    NoName(String),
}

/// One field of an event's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The field's name (`filename`).
    pub name: String,
    /// The declaration without the name (`const char *`, `char[16]`).
    pub ctype: String,
    /// Its offset in the record, in bytes.
    pub offset: u32,
    /// Its size, in bytes.
    pub size: u32,
    /// `signed:1`.
    pub signed: bool,
}

/// An event's `format` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Format {
    /// `name:` (the event, without its system).
    pub name: String,
    /// `ID:`, the event's type number.
    pub id: u32,
    /// Every `field:` line, in file order (the `common_*` header first).
    pub fields: Vec<Field>,
    /// `print fmt:` as printed.
    pub print_fmt: String,
}

impl Format {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields that are not the `common_*` header every event shares.
    pub fn own_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.name.starts_with("common_"))
    }
}

/// Parse the text of a `format` file; a line that looks like a field but does not parse is an
/// error naming it.
pub fn parse(text: &str) -> Result<Format, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut print_fmt = String::new();
    let mut fields = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = t.strip_prefix("ID:") {
            id = Some(v.trim().parse().map_err(|_| FormatError::Id(t.to_string()))?);
        } else if let Some(v) = t.strip_prefix("print fmt:") {
            print_fmt = v.trim().to_string();
        } else if t.starts_with("field:") {
            fields.push(parse_field(t).map_err(|detail| FormatError::Field { line: t.to_string(), detail })?);
        }
    }
    let (Some(name), Some(id)) = (name, id) else {
        return Err(FormatError::NoName);
    };
    Ok(Format { name, id, fields, print_fmt })
}

/// One `field:` line; the error says what is wrong with it.
fn parse_field(line: &str) -> Result<Field, FieldError> {
    let mut decl = None;
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(':').ok_or_else(|| FieldError::NoColon(part.to_string()))?;
        let number = |v: &str| {
            v.trim().parse::<u32>().map_err(|source| FieldError::Number {
                key: key.to_string(),
                value: v.to_string(),
                source,
            })
        };
        match key {
            "field" | "field special" => decl = Some(value.trim()),
            "offset" => offset = Some(number(value)?),
            "size" => size = Some(number(value)?),
            "signed" => signed = Some(value.trim() == "1"),
            _ => {}
        }
    }
    let (Some(decl), Some(offset), Some(size), Some(signed)) = (decl, offset, size, signed) else {
        return Err(FieldError::Missing);
    };
    let (ctype, name) = split_decl(decl).ok_or_else(|| FieldError::NoName(decl.to_string()))?;
    Ok(Field { name, ctype, offset, size, signed })
}

/// `char comm[16]` → (`char[16]`, `comm`); `const char * filename` → (`const char *`, `filename`).
fn split_decl(decl: &str) -> Option<(String, String)> {
    let (base, array) = match decl.find('[') {
        Some(i) if decl.ends_with(']') => (decl[..i].trim_end(), &decl[i..]),
        _ => (decl, ""),
    };
    // The byte after the last character that cannot be in a C name (a multi-byte one included:
    // found by the `format` fuzz target, `+ 1` sliced inside it).
    let start = base
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &base[start..];
    if name.is_empty() || start == 0 {
        return None;
    }
    let ctype = format!("{}{array}", base[..start].trim_end());
    Some((ctype, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian 6.1's events/syscalls/sys_enter_openat/format.
    const OPENAT: &str = "name: sys_enter_openat
ID: 633
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx\", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
";

    #[test]
    fn parses_sys_enter_openat() {
        let f = parse(OPENAT).unwrap();
        assert_eq!((f.name.as_str(), f.id), ("sys_enter_openat", 633));
        let own: Vec<&str> = f.own_fields().map(|f| f.name.as_str()).collect();
        assert_eq!(own, ["__syscall_nr", "dfd", "filename", "flags", "mode"]);
        let filename = f.field("filename").unwrap();
        assert_eq!(filename.ctype, "const char *");
        assert_eq!((filename.offset, filename.size, filename.signed), (24, 8, false));
        assert!(f.field("common_pid").unwrap().signed);
        assert!(f.print_fmt.starts_with("\"dfd: 0x%08lx"));
    }

    #[test]
    fn splits_arrays_and_data_loc() {
        assert_eq!(split_decl("char comm[16]"), Some(("char[16]".into(), "comm".into())));
        assert_eq!(split_decl("__data_loc char[] name"), Some(("__data_loc char[]".into(), "name".into())));
        assert_eq!(split_decl("int"), None);
        let odd = "unsigned short x\u{fffd}name";
        assert_eq!(split_decl(odd), Some(("unsigned short x\u{fffd}".into(), "name".into())));
        assert_eq!(split_decl("int \u{fffd}"), None);
    }

    #[test]
    fn rejects_a_broken_field_line() {
        let bad = "name: x\nID: 1\n\tfield:int a;\toffset:zz;\tsize:4;\tsigned:1;\n";
        let e = parse(bad).unwrap_err();
        assert!(matches!(e, FormatError::Field { .. }), "{e}");
        assert!(e.to_string().starts_with("bad field line \"field:int a;"), "{e}");
        assert_eq!(parse("ID: 1\n"), Err(FormatError::NoName));
    }
}
