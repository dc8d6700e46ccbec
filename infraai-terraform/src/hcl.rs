//! A small typed HCL writer: no string templates, so no input string can change
//! the structure of a generated configuration (architecture rule 5).
//!
//! * Block types, block labels, attribute names and the segments of references
//!   are [`Ident`]s: `[A-Za-z_][A-Za-z0-9_-]*`, checked when they are built.
//! * Every string value is written as a quoted literal with `\`, `"`, newlines
//!   and control characters escaped, and with `${` / `%{` written as `$${` /
//!   `%%{`, so Terraform reads back exactly the characters it was given.
//! * Object keys are quoted (and escaped) strings, so any key is safe.
//!
//! Terraform normalizes every string to Unicode NFC; a string already in NFC
//! comes back byte for byte, any other string comes back as its NFC form.
//!
//! ```
//! use infraai_terraform::hcl::{Block, Body, Expr};
//!
//! let mut body = Body::new();
//! body.push(Block::variable("greeting")?.attr("default", "hi ${there}")?);
//! body.push(
//!     Block::resource("terraform_data", "web")?
//!         .attr("input", Expr::reference("var.greeting")?)?
//!         .block(Block::new("provisioner", ["local-exec"])?.attr("command", "echo \"ok\"")?),
//! );
//! body.push(Block::output("greeting")?.attr("value", Expr::reference("terraform_data.web.output")?)?);
//! let hcl = body.to_string();
//! assert!(hcl.contains(r#"default = "hi $${there}""#));
//! assert!(hcl.contains(r#"command = "echo \"ok\"""#));
//! assert!(Block::resource("terraform_data", "web\" {").is_err());
//! # Ok::<(), infraai_terraform::hcl::HclError>(())
//! ```

use std::fmt::{self, Write as _};

/// Why a piece of HCL could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HclError {
    /// A name is not an identifier (`[A-Za-z_][A-Za-z0-9_-]*`).
    #[error("invalid {role} {value:?}: must match [A-Za-z_][A-Za-z0-9_-]*")]
    InvalidIdentifier {
        /// Where the name was to be used (`block label`, `attribute name`, …).
        role: &'static str,
        /// The rejected name (shortened when very long).
        value: String,
    },
    /// A number that HCL cannot represent (NaN or infinite).
    #[error("invalid number {0}: HCL has no NaN or infinity")]
    InvalidNumber(String),
}

impl From<HclError> for infraai_core::Error {
    fn from(e: HclError) -> Self {
        match &e {
            HclError::InvalidIdentifier { role, .. } => {
                infraai_core::Error::invalid(*role, e.to_string())
            }
            HclError::InvalidNumber(_) => infraai_core::Error::invalid("number", e.to_string()),
        }
    }
}

/// Whether `s` matches `[A-Za-z_][A-Za-z0-9_-]*`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A validated identifier: `[A-Za-z_][A-Za-z0-9_-]*`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `name` as an identifier used as `role` (for the error message).
    pub fn new(role: &'static str, name: impl Into<String>) -> Result<Self, HclError> {
        let name = name.into();
        if is_identifier(&name) {
            Ok(Self(name))
        } else {
            let mut value = name;
            if value.len() > 80 {
                let mut cut = 80;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
                value.push('…');
            }
            Err(HclError::InvalidIdentifier { role, value })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value or reference on the right of `=`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A finite number (kept as JSON number text).
    Number(serde_json::Number),
    /// A string literal (escaped when written).
    String(String),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{ "key" = value }` (keys are quoted strings, in the given order).
    Object(Vec<(String, Expr)>),
    /// A reference such as `var.region` or `aws_instance.web.network_interface[0].id`.
    Reference(Vec<Traverse>),
    /// A string with interpolations: `"http://${aws_instance.web.public_ip}:8080"`.
    /// Literal parts are escaped like any string.
    Template(Vec<Part>),
    /// A function call such as `upper(var.name)` or `jsonencode({…})`.
    Call(Ident, Vec<Expr>),
}

/// One step of a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Traverse {
    /// `.name` (or the root name).
    Attr(Ident),
    /// `[n]`.
    Index(u64),
}

/// A part of a [`Expr::Template`].
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Literal text (escaped when written).
    Lit(String),
    /// `${expr}`.
    Interp(Expr),
}

impl Part {
    /// Literal text.
    pub fn lit(text: impl Into<String>) -> Self {
        Part::Lit(text.into())
    }
}

impl Expr {
    /// A reference from a dotted path such as `var.region` or
    /// `aws_instance.web.network_interface[0].id`: every segment must be an
    /// identifier, optionally followed by numeric `[n]` indexes.
    pub fn reference(path: &str) -> Result<Self, HclError> {
        let bad = || HclError::InvalidIdentifier {
            role: "reference segment",
            value: path.chars().take(80).collect(),
        };
        let mut steps = Vec::new();
        for segment in path.split('.') {
            let (name, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            steps.push(Traverse::Attr(Ident::new("reference segment", name)?));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(bad)?;
                let digits = rest[..close].strip_prefix('[').ok_or_else(bad)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                steps.push(Traverse::Index(digits.parse().map_err(|_| bad())?));
                rest = &rest[close + 1..];
            }
        }
        Ok(Expr::Reference(steps))
    }

    /// A string template from parts.
    pub fn template(parts: impl IntoIterator<Item = Part>) -> Self {
        Expr::Template(parts.into_iter().collect())
    }

    /// A function call; the function name must be an identifier.
    pub fn call(function: &str, args: impl IntoIterator<Item = Expr>) -> Result<Self, HclError> {
        Ok(Expr::Call(
            Ident::new("function name", function)?,
            args.into_iter().collect(),
        ))
    }

    /// A number; NaN and infinities are rejected.
    pub fn number(n: f64) -> Result<Self, HclError> {
        serde_json::Number::from_f64(n)
            .map(Expr::Number)
            .ok_or_else(|| HclError::InvalidNumber(n.to_string()))
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Expr::Null => out.push_str("null"),
            Expr::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Expr::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Expr::String(s) => write_string(out, s),
            Expr::List(items) => write_list(out, "[", items, "]", indent),
            Expr::Object(entries) if entries.is_empty() => out.push_str("{}"),
            Expr::Object(entries) => {
                out.push_str("{\n");
                let keys: Vec<String> = entries.iter().map(|(k, _)| quote(k)).collect();
                let widths = align(
                    keys.iter()
                        .zip(entries)
                        .map(|(k, (_, v))| (!v.is_multiline()).then(|| k.chars().count())),
                );
                for ((key, (_, value)), width) in keys.iter().zip(entries).zip(widths) {
                    write_attr(out, indent + 1, key, key.chars().count(), width, value);
                }
                push_indent(out, indent);
                out.push('}');
            }
            Expr::Reference(path) => {
                for (i, step) in path.iter().enumerate() {
                    match step {
                        Traverse::Attr(name) => {
                            if i > 0 {
                                out.push('.');
                            }
                            out.push_str(name.as_str());
                        }
                        Traverse::Index(n) => {
                            let _ = write!(out, "[{n}]");
                        }
                    }
                }
            }
            Expr::Template(parts) => {
                out.push('"');
                for part in parts {
                    match part {
                        Part::Lit(text) => write_string_body(out, text),
                        Part::Interp(expr) => {
                            out.push_str("${");
                            expr.write(out, indent);
                            out.push('}');
                        }
                    }
                }
                out.push('"');
            }
            Expr::Call(function, args) => {
                out.push_str(function.as_str());
                write_list(out, "(", args, ")", indent);
            }
        }
    }
}

/// `items` separated by `, ` between `open` and `close`.
fn write_list(out: &mut String, open: &str, items: &[Expr], close: &str, indent: usize) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item.write(out, indent);
    }
    out.push_str(close);
}

impl Expr {
    /// Whether the value is written over more than one line (a non-empty
    /// object, or anything holding one).
    fn is_multiline(&self) -> bool {
        match self {
            Expr::Object(entries) => !entries.is_empty(),
            Expr::List(items) | Expr::Call(_, items) => items.iter().any(Expr::is_multiline),
            Expr::Template(parts) => parts
                .iter()
                .any(|p| matches!(p, Part::Interp(e) if e.is_multiline())),
            _ => false,
        }
    }
}

/// `terraform fmt` aligns the `=` of consecutive one-line attributes (a
/// multi-line value, a block or a blank line ends a group): for each item
/// the name width to pad to, given each item's name width (`None` for items
/// that end a group).
fn align(names: impl Iterator<Item = Option<usize>>) -> Vec<usize> {
    let names: Vec<Option<usize>> = names.collect();
    let mut widths = vec![0; names.len()];
    let mut start = 0;
    while start < names.len() {
        let end = names[start..]
            .iter()
            .position(Option::is_none)
            .map_or(names.len(), |n| start + n);
        let max = names[start..end]
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0);
        widths[start..end].iter_mut().for_each(|w| *w = max);
        start = end + 1;
    }
    widths
}

/// `name = value` on its own line, the `=` padded to `width` (`name` is `len` wide).
fn write_attr(out: &mut String, indent: usize, name: &str, len: usize, width: usize, value: &Expr) {
    push_indent(out, indent);
    out.push_str(name);
    out.push_str(&" ".repeat(width.saturating_sub(len)));
    out.push_str(" = ");
    value.write(out, indent);
    out.push('\n');
}

impl From<&str> for Expr {
    fn from(s: &str) -> Self {
        Expr::String(s.to_string())
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::String(s)
    }
}

impl From<&String> for Expr {
    fn from(s: &String) -> Self {
        Expr::String(s.clone())
    }
}

impl From<bool> for Expr {
    fn from(b: bool) -> Self {
        Expr::Bool(b)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Expr {
            fn from(n: $t) -> Self {
                Expr::Number(serde_json::Number::from(n))
            }
        }
    )*};
}
from_int!(i32, i64, u32, u64, usize);

impl<T: Into<Expr>> From<Vec<T>> for Expr {
    fn from(items: Vec<T>) -> Self {
        Expr::List(items.into_iter().map(Into::into).collect())
    }
}

impl From<serde_json::Value> for Expr {
    /// JSON maps to HCL literals; JSON strings stay literal (never templates).
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Expr::Null,
            serde_json::Value::Bool(b) => Expr::Bool(b),
            serde_json::Value::Number(n) => Expr::Number(n),
            serde_json::Value::String(s) => Expr::String(s),
            serde_json::Value::Array(a) => Expr::List(a.into_iter().map(Expr::from).collect()),
            serde_json::Value::Object(m) => {
                Expr::Object(m.into_iter().map(|(k, v)| (k, Expr::from(v))).collect())
            }
        }
    }
}

/// Writes `s` as a quoted HCL string literal whose value is exactly `s`.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    write_string_body(out, s);
    out.push('"');
}

/// The inside of a quoted literal (no quotes around it).
fn write_string_body(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `${` and `%{` open templates; doubling the marker makes them literal.
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            // Control characters, and invisible characters that could make a
            // reviewed file read differently from what it does, are escaped.
            c if c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}') =>
            {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `s` as a quoted HCL string literal (see [`write_string`]).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

fn push_indent(out: &mut String, level: usize) {
    out.push_str(&"  ".repeat(level));
}

/// One item of a body.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Attr(Ident, Expr),
    Block(Block),
}

/// A sequence of attributes and blocks: a file, or the inside of a block.
/// [`fmt::Display`] renders it as HCL.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body {
    items: Vec<Item>,
}

impl Body {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a block.
    pub fn push(&mut self, block: Block) -> &mut Self {
        self.items.push(Item::Block(block));
        self
    }

    /// Appends an attribute `name = value`.
    pub fn set(&mut self, name: &str, value: impl Into<Expr>) -> Result<&mut Self, HclError> {
        self.items.push(Item::Attr(
            Ident::new("attribute name", name)?,
            value.into(),
        ));
        Ok(self)
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn write(&self, out: &mut String, indent: usize) {
        let widths = align(self.items.iter().map(|item| match item {
            Item::Attr(name, value) if !value.is_multiline() => Some(name.as_str().len()),
            _ => None,
        }));
        for (i, (item, width)) in self.items.iter().zip(widths).enumerate() {
            match item {
                Item::Attr(name, value) => {
                    let name = name.as_str();
                    write_attr(out, indent, name, name.len(), width, value);
                }
                Item::Block(block) => {
                    // Top-level blocks are separated by a blank line.
                    if indent == 0 && i > 0 {
                        out.push('\n');
                    }
                    block.write(out, indent);
                }
            }
        }
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out, 0);
        f.write_str(&out)
    }
}

/// A block: `type "label" … { body }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    kind: Ident,
    labels: Vec<Ident>,
    body: Body,
}

impl Block {
    /// A block of type `kind` with `labels`, all validated as identifiers.
    pub fn new<I, S>(kind: &str, labels: I) -> Result<Self, HclError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            kind: Ident::new("block type", kind)?,
            labels: labels
                .into_iter()
                .map(|l| Ident::new("block label", l.as_ref()))
                .collect::<Result<_, _>>()?,
            body: Body::new(),
        })
    }

    /// `resource "<type>" "<name>" {}`.
    pub fn resource(resource_type: &str, name: &str) -> Result<Self, HclError> {
        Self::new("resource", [resource_type, name])
    }

    /// `data "<type>" "<name>" {}`.
    pub fn data(data_type: &str, name: &str) -> Result<Self, HclError> {
        Self::new("data", [data_type, name])
    }

    /// `variable "<name>" {}`.
    pub fn variable(name: &str) -> Result<Self, HclError> {
        Self::new("variable", [name])
    }

    /// `output "<name>" {}`.
    pub fn output(name: &str) -> Result<Self, HclError> {
        Self::new("output", [name])
    }

    /// `provider "<name>" {}`.
    pub fn provider(name: &str) -> Result<Self, HclError> {
        Self::new("provider", [name])
    }

    /// Adds an attribute `name = value`.
    pub fn attr(mut self, name: &str, value: impl Into<Expr>) -> Result<Self, HclError> {
        self.body.set(name, value)?;
        Ok(self)
    }

    /// Adds a nested block.
    pub fn block(mut self, block: Block) -> Self {
        self.body.push(block);
        self
    }

    /// The block's body, to add items in a loop.
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    /// The block type.
    pub fn kind(&self) -> &str {
        self.kind.as_str()
    }

    /// The labels.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(Ident::as_str)
    }

    fn write(&self, out: &mut String, indent: usize) {
        push_indent(out, indent);
        out.push_str(self.kind.as_str());
        for label in &self.labels {
            out.push(' ');
            write_string(out, label.as_str());
        }
        if self.body.is_empty() {
            out.push_str(" {}\n");
            return;
        }
        out.push_str(" {\n");
        self.body.write(out, indent + 1);
        push_indent(out, indent);
        out.push_str("}\n");
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write(&mut out, 0);
        f.write_str(&out)
    }
}

/// Reads an HCL quoted string literal back (the inverse of [`write_string`]
/// for what it writes). `None` when `literal` is not one quoted literal or
/// holds a template sequence. Used by tests and the fixers.
pub fn unquote(literal: &str) -> Option<String> {
    let inner = literal.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                e @ ('u' | 'U') => {
                    let digits = if e == 'u' { 4 } else { 8 };
                    let hex: String = (0..digits).map(|_| chars.next()).collect::<Option<_>>()?;
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            '"' => return None,
            '$' | '%' if chars.peek() == Some(&'{') => return None,
            '$' | '%' if chars.peek() == Some(&c) => {
                // `$${` → `${`; a doubled marker not before `{` stays as is.
                let mut look = chars.clone();
                look.next();
                if look.peek() == Some(&'{') {
                    chars.next();
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_follow_the_pattern() {
        for ok in ["a", "_a", "A_b-9", "local-exec", "x123"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a.b", "a b", "a\"", "é", "a{", "a\n", "a}"] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
        let err = Block::resource("terraform_data", "x\" {").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid block label \"x\\\" {\": must match [A-Za-z_][A-Za-z0-9_-]*"
        );
        let long = "é".repeat(100);
        match Ident::new("attribute name", long).unwrap_err() {
            HclError::InvalidIdentifier { value, .. } => assert!(value.len() <= 84),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\r\tz"), r#""x\ny\r\tz""#);
        assert_eq!(quote("${var.x} %{ if }"), r#""$${var.x} %%{ if }""#);
        assert_eq!(quote("$${x}"), r#""$$${x}""#);
        assert_eq!(quote("$ % $$ {"), r#""$ % $$ {""#);
        assert_eq!(quote("\u{0}\u{7f}\u{202E}"), r#""\u0000\u007F\u202E""#);
        assert_eq!(quote("é😀"), "\"é😀\"");
    }

    #[test]
    fn renders_nested_blocks_and_values() {
        let mut body = Body::new();
        body.push(
            Block::resource("terraform_data", "web")
                .unwrap()
                .attr(
                    "input",
                    serde_json::json!({"a\"": [1, true, null], "b": "}"}),
                )
                .unwrap()
                .attr("ref", Expr::reference("var.x").unwrap())
                .unwrap()
                .block(
                    Block::new("provisioner", ["local-exec"])
                        .unwrap()
                        .attr("command", "echo hi")
                        .unwrap(),
                ),
        );
        body.push(Block::variable("x").unwrap());
        assert_eq!(
            body.to_string(),
            concat!(
                "resource \"terraform_data\" \"web\" {\n",
                "  input = {\n",
                "    \"a\\\"\" = [1, true, null]\n",
                "    \"b\"   = \"}\"\n",
                "  }\n",
                "  ref = var.x\n",
                "  provisioner \"local-exec\" {\n",
                "    command = \"echo hi\"\n",
                "  }\n",
                "}\n",
                "\n",
                "variable \"x\" {}\n",
            )
        );
        assert!(Expr::reference("var.x y").is_err());
        let mut b = Body::new();
        b.set("r", Expr::reference("a.b[0].c[12]").unwrap())
            .unwrap();
        b.set(
            "t",
            Expr::template([
                Part::lit("http://${x}\""),
                Part::Interp(Expr::reference("a.ip").unwrap()),
                Part::lit(":80"),
            ]),
        )
        .unwrap();
        b.set("f", Expr::call("upper", [Expr::from("a\"b")]).unwrap())
            .unwrap();
        assert_eq!(
            b.to_string(),
            "r = a.b[0].c[12]\nt = \"http://$${x}\\\"${a.ip}:80\"\nf = upper(\"a\\\"b\")\n"
        );
        for bad in ["a[", "a[x]", "a[]", "a]0[", "a[0]b", "a.[0]", "a[-1]"] {
            assert!(Expr::reference(bad).is_err(), "{bad}");
        }
        assert!(Expr::call("rm -rf", []).is_err());
        assert!(Expr::number(f64::NAN).is_err());
        assert_eq!(
            HclError::InvalidNumber("NaN".into()).to_string(),
            "invalid number NaN: HCL has no NaN or infinity"
        );
    }

    #[test]
    fn aligns_equals_like_terraform_fmt() {
        let block = Block::resource("google_compute_instance", "api")
            .unwrap()
            .attr("name", "api")
            .unwrap()
            .attr(
                "machine_type",
                Expr::reference("var.machine_type_api").unwrap(),
            )
            .unwrap()
            .attr("labels", serde_json::json!({"a": "1", "run-id": "x"}))
            .unwrap()
            .attr("tags", vec!["api"])
            .unwrap()
            .attr("zone", Expr::reference("var.zone").unwrap())
            .unwrap()
            .block(Block::new("access_config", Vec::<&str>::new()).unwrap())
            .attr("allow_stopping_for_update", true)
            .unwrap();
        assert_eq!(
            block.to_string(),
            concat!(
                "resource \"google_compute_instance\" \"api\" {\n",
                "  name         = \"api\"\n",
                "  machine_type = var.machine_type_api\n",
                "  labels = {\n",
                "    \"a\"      = \"1\"\n",
                "    \"run-id\" = \"x\"\n",
                "  }\n",
                "  tags = [\"api\"]\n",
                "  zone = var.zone\n",
                "  access_config {}\n",
                "  allow_stopping_for_update = true\n",
                "}\n",
            )
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the string, the literal is one token: it starts and ends
        /// with a quote, has no unescaped quote, newline or template marker
        /// inside, and reads back to the same string.
        #[test]
        fn escaping_round_trips(s in any::<String>(), hostile in "[\"\\\\$%{}\n\r\tx]{0,40}") {
            for input in [s.as_str(), hostile.as_str()] {
                let lit = quote(input);
                prop_assert!(lit.len() >= 2 && lit.starts_with('"') && lit.ends_with('"'));
                let inner = &lit[1..lit.len() - 1];
                prop_assert!(!inner.contains('\n') && !inner.contains('\r'));
                // No `"` that is not escaped by an odd run of backslashes.
                let bytes = inner.as_bytes();
                for (i, b) in bytes.iter().enumerate() {
                    if *b == b'"' {
                        let run = bytes[..i].iter().rev().take_while(|c| **c == b'\\').count();
                        prop_assert!(run % 2 == 1, "unescaped quote in {lit}");
                    }
                }
                prop_assert_eq!(unquote(&lit), Some(input.to_string()));
            }
        }

        /// Only identifiers are accepted as labels.
        #[test]
        fn labels_are_validated(s in any::<String>()) {
            prop_assert_eq!(Block::variable(&s).is_ok(), is_identifier(&s));
        }
    }
}
