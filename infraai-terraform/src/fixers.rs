//! Deterministic [`Fixer`]s: small rules that repair common Terraform
//! diagnostics without an LLM. Each returns `None` when it cannot help, so the
//! deploy loop can try the next fixer.
//!
//! | fixer | diagnostic | repair |
//! |---|---|---|
//! | [`UndeclaredVariableFixer`] | `Reference to undeclared input variable` | adds a `variable` block to `variables.tf` (default from the plan for `region` / `machine_type`) |
//! | [`UnsupportedArgumentFixer`] | `Unsupported argument`, `Unsupported block type` | removes the argument / block at the diagnostic's range |
//! | [`DuplicateResourceFixer`] | `Duplicate resource "…" configuration` | removes the second block when it is an exact copy, else renames it `<name>_2` |

use crate::hcl::{is_identifier, Block};
use async_trait::async_trait;
use infraai_core::{Diagnostic, DiagnosticSeverity, FixRequest, Fixer, TerraformFiles};
use std::collections::BTreeSet;
use std::sync::Arc;
use tracing::info;

/// The deterministic fixers, in the order the deploy loop should try them
/// (before any LLM fixer).
pub fn deterministic_fixers() -> Vec<Arc<dyn Fixer>> {
    vec![
        Arc::new(UndeclaredVariableFixer),
        Arc::new(UnsupportedArgumentFixer),
        Arc::new(DuplicateResourceFixer),
    ]
}

/// The first double-quoted word after `after` in `text`.
fn quoted_after<'a>(text: &'a str, after: &str) -> Option<&'a str> {
    let rest = &text[text.find(after)? + after.len()..];
    let rest = rest.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

fn errors<'a>(
    diagnostics: &'a [Diagnostic],
    summary: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = &'a Diagnostic> + 'a {
    diagnostics
        .iter()
        .filter(move |d| d.severity == DiagnosticSeverity::Error && summary(&d.summary))
}

// ---------------------------------------------------------------- scanning

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Bracket,
    Str,
    Template,
}

/// From byte `start` of `text`, scans HCL tokens (brackets, strings with
/// templates, comments, heredocs) and returns the byte index just past the
/// first newline reached with nothing open — the end of the attribute or
/// block that starts there. `None` when the text ends first.
fn scan_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        match stack.last() {
            Some(Ctx::Str) => match c {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'$' | b'%' if b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&b'{') => i += 2,
                b'$' | b'%' if b.get(i + 1) == Some(&b'{') => {
                    stack.push(Ctx::Template);
                    i += 1;
                }
                _ => {}
            },
            _ => match c {
                b'\n' if stack.is_empty() => return Some(i + 1),
                b'"' => stack.push(Ctx::Str),
                b'(' | b'[' | b'{' => stack.push(Ctx::Bracket),
                b')' | b']' | b'}' => {
                    stack.pop()?;
                }
                b'#' => i = text[i..].find('\n').map(|n| i + n - 1)?,
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    i = text[i..].find('\n').map(|n| i + n - 1)?
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i = text[i + 2..].find("*/").map(|n| i + 2 + n + 1)?
                }
                b'<' if b.get(i + 1) == Some(&b'<') => {
                    // Heredoc: <<MARKER or <<-MARKER, ends at a line that is MARKER.
                    let rest = &text[i + 2..];
                    let rest = rest.strip_prefix('-').unwrap_or(rest);
                    let line_end = rest.find('\n')?;
                    let marker = rest[..line_end].trim();
                    if !is_identifier(marker) {
                        return None;
                    }
                    let body_start = text.len() - rest.len() + line_end + 1;
                    let mut pos = body_start;
                    loop {
                        let end = text[pos..].find('\n').map(|n| pos + n)?;
                        if text[pos..end].trim() == marker {
                            i = end - 1;
                            break;
                        }
                        pos = end + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// Byte offset of the start of 1-based `line`.
fn line_start(text: &str, line: u32) -> Option<usize> {
    match line {
        0 => None,
        1 => Some(0),
        n => text
            .match_indices('\n')
            .nth(n as usize - 2)
            .map(|(i, _)| i + 1),
    }
}

/// The byte range of the item (attribute or block) named `name` whose first
/// line is `line`, including its trailing newline.
fn item_range(text: &str, line: u32, name: &str, block: bool) -> Option<(usize, usize)> {
    let start = line_start(text, line)?;
    let line_text = &text[start..];
    let indent = line_text.len() - line_text.trim_start_matches([' ', '\t']).len();
    let rest = line_text[indent..].strip_prefix(name)?;
    if !rest.starts_with([' ', '\t', '=', '{', '"']) {
        return None;
    }
    let after = rest.trim_start_matches([' ', '\t']);
    let from = if block {
        // `name "label" … {`: the body starts at the first `{` on the line.
        let brace = after.find('{')?;
        if after[..brace].contains(['=', '\n']) {
            return None;
        }
        text.len() - after.len() + brace
    } else {
        let value = after.strip_prefix('=')?;
        if value.starts_with('=') {
            return None;
        }
        text.len() - value.len()
    };
    let end = scan_end(text, from).or_else(|| {
        // The item ends the file without a newline.
        scan_end(&format!("{text}\n"), from).map(|e| e - 1)
    })?;
    Some((start, end.min(text.len())))
}

// ---------------------------------------------------------------- fixers

/// Declares input variables the configuration references but does not declare.
/// The default comes from the plan for `region` and `machine_type`; other
/// variables are declared without a default (plan will then ask for a value,
/// which is honest: the fixer cannot invent one).
pub struct UndeclaredVariableFixer;

#[async_trait]
impl Fixer for UndeclaredVariableFixer {
    fn name(&self) -> &str {
        "add_undeclared_variable"
    }

    async fn fix(&self, request: &FixRequest<'_>) -> infraai_core::Result<Option<TerraformFiles>> {
        let names: BTreeSet<&str> = errors(request.diagnostics, |s| {
            s == "Reference to undeclared input variable"
        })
        .filter_map(|d| quoted_after(&d.detail, "with the name "))
        .filter(|n| is_identifier(n))
        .collect();
        let mut files = request.files.clone();
        let mut added = Vec::new();
        for name in names {
            let header = format!("variable \"{name}\"");
            if files.files.values().any(|t| t.contains(&header)) {
                continue;
            }
            let mut block = Block::variable(name)?.attr(
                "description",
                format!("Declared by infraai's fixer: the configuration references var.{name}."),
            )?;
            match name {
                "region" => block = block.attr("default", request.plan.region.as_str())?,
                "machine_type" => {
                    block = block.attr("default", request.plan.machine_type.as_str())?
                }
                _ => {}
            }
            let text = files.files.entry("variables.tf".into()).or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&block.to_string());
            added.push(name.to_string());
        }
        if added.is_empty() {
            return Ok(None);
        }
        info!(fixer = self.name(), variables = ?added, "declared variables");
        Ok(Some(files))
    }
}

/// Removes arguments and blocks that the resource schema does not know, at
/// the range Terraform reports.
pub struct UnsupportedArgumentFixer;

#[async_trait]
impl Fixer for UnsupportedArgumentFixer {
    fn name(&self) -> &str {
        "remove_unsupported_argument"
    }

    async fn fix(&self, request: &FixRequest<'_>) -> infraai_core::Result<Option<TerraformFiles>> {
        // (file, line, name, is_block), removed bottom-up so lines stay valid.
        let mut targets: Vec<(String, u32, String, bool)> = Vec::new();
        for d in errors(request.diagnostics, |s| {
            s == "Unsupported argument" || s == "Unsupported block type"
        }) {
            let block = d.summary == "Unsupported block type";
            let name = if block {
                quoted_after(&d.detail, "Blocks of type ")
            } else {
                quoted_after(&d.detail, "An argument named ")
            };
            if let (Some(name), Some(range)) = (name, &d.range) {
                if is_identifier(name) {
                    targets.push((range.filename.clone(), range.start_line, name.into(), block));
                }
            }
        }
        targets.sort_by(|a, b| (&a.0, b.1).cmp(&(&b.0, a.1)));
        targets.dedup();
        let mut files = request.files.clone();
        let mut removed = Vec::new();
        for (file, line, name, block) in targets {
            let Some(text) = files.files.get_mut(&file) else {
                continue;
            };
            if let Some((start, end)) = item_range(text, line, &name, block) {
                text.replace_range(start..end, "");
                removed.push(format!("{file}:{line} {name}"));
            }
        }
        if removed.is_empty() {
            return Ok(None);
        }
        info!(fixer = self.name(), removed = ?removed, "removed unsupported arguments");
        Ok(Some(files))
    }
}

/// Repairs `Duplicate resource` errors: an exact copy of the first block is
/// removed; a different block with the same name is renamed `<name>_2` (or the
/// next free suffix), so nothing the configuration asked for is lost — the
/// dry-run change set shows the extra resource before anything is applied.
pub struct DuplicateResourceFixer;

#[async_trait]
impl Fixer for DuplicateResourceFixer {
    fn name(&self) -> &str {
        "dedupe_resource"
    }

    async fn fix(&self, request: &FixRequest<'_>) -> infraai_core::Result<Option<TerraformFiles>> {
        let mut files = request.files.clone();
        let mut changed = false;
        let mut diags: Vec<&Diagnostic> = errors(request.diagnostics, |s| {
            s.starts_with("Duplicate resource ") || s.starts_with("Duplicate data ")
        })
        .collect();
        // Bottom-up, so earlier line numbers stay valid.
        diags.sort_by(|a, b| {
            let key = |d: &Diagnostic| d.range.as_ref().map(|r| (r.filename.clone(), r.start_line));
            key(b).cmp(&key(a))
        });
        for d in diags {
            let kind = if d.summary.starts_with("Duplicate data ") {
                "data"
            } else {
                "resource"
            };
            let (Some(rtype), Some(name), Some(range)) = (
                quoted_after(&d.summary, &format!("Duplicate {kind} ")),
                quoted_after(&d.detail, "named "),
                &d.range,
            ) else {
                continue;
            };
            if !is_identifier(rtype) || !is_identifier(name) {
                continue;
            }
            let first = first_declaration(&d.detail)
                .and_then(|(f, l)| {
                    Some((f.clone(), item_range(files.files.get(&f)?, l, kind, true)?))
                })
                .and_then(|(f, (s, e))| Some(files.files.get(&f)?[s..e].to_string()));
            let Some(text) = files.files.get(&range.filename) else {
                continue;
            };
            let Some((start, end)) = item_range(text, range.start_line, kind, true) else {
                continue;
            };
            let second = text[start..end].to_string();
            if first.as_deref().map(str::trim) == Some(second.trim()) {
                if let Some(t) = files.files.get_mut(&range.filename) {
                    t.replace_range(start..end, "");
                    changed = true;
                    info!(fixer = self.name(), resource = %format!("{rtype}.{name}"), "removed an exact duplicate");
                }
                continue;
            }
            let old = format!("\"{rtype}\" \"{name}\"");
            let Some(new_name) = (2..100).map(|n| format!("{name}_{n}")).find(|n| {
                let label = format!("\"{rtype}\" \"{n}\"");
                !files.files.values().any(|t| t.contains(&label))
            }) else {
                continue;
            };
            let header_end = second.find('\n').unwrap_or(second.len());
            let Some(pos) = second[..header_end].find(&old) else {
                continue;
            };
            if let Some(t) = files.files.get_mut(&range.filename) {
                let at = start + pos;
                t.replace_range(at..at + old.len(), &format!("\"{rtype}\" \"{new_name}\""));
                changed = true;
                info!(fixer = self.name(), resource = %format!("{rtype}.{name}"), renamed = %new_name, "renamed a duplicate");
            }
        }
        Ok(changed.then_some(files))
    }
}

/// `main.tf:1,1-30` in "was already declared at main.tf:1,1-30." → (file, line).
fn first_declaration(detail: &str) -> Option<(String, u32)> {
    let rest = &detail[detail.find("declared at ")? + "declared at ".len()..];
    let loc = rest.split_whitespace().next()?;
    let (file, pos) = loc.rsplit_once(':')?;
    let line = pos.split(',').next()?.parse().ok()?;
    Some((file.to_string(), line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use infraai_core::{InfraPlan, SourceRange};

    fn plan() -> InfraPlan {
        serde_json::from_value(serde_json::json!({
            "cloud": "local", "stack_type": "backend_api", "region": "local-1",
            "machine_type": "small", "autoscaling": false, "estimated_cost_usd": 0.0,
            "risk_flags": [], "resources": [], "monitoring": [], "confidence": 0.9, "summary": "t"
        }))
        .unwrap()
    }

    fn diag(summary: &str, detail: &str, file: &str, line: u32) -> Diagnostic {
        Diagnostic {
            severity: DiagnosticSeverity::Error,
            summary: summary.into(),
            detail: detail.into(),
            range: Some(SourceRange {
                filename: file.into(),
                start_line: line,
                end_line: line,
            }),
        }
    }

    async fn run(fixer: &dyn Fixer, main: &str, diags: &[Diagnostic]) -> Option<TerraformFiles> {
        let plan = plan();
        let files = TerraformFiles::single(main);
        fixer
            .fix(&FixRequest {
                plan: &plan,
                files: &files,
                diagnostics: diags,
                attempt: 1,
            })
            .await
            .unwrap()
    }

    #[test]
    fn scanner_finds_item_ends() {
        let t = "a = [\n  \"x]\",\n  {b = \"${var.y}\"}, # ]\n]\nc = 1\n";
        assert_eq!(
            item_range(t, 1, "a", false),
            Some((0, t.find("c =").unwrap()))
        );
        assert_eq!(
            item_range(t, 5, "c", false),
            Some((t.find("c =").unwrap(), t.len()))
        );
        let h = "x = <<EOT\n]]}\nEOT\ny = 2";
        assert_eq!(
            item_range(h, 1, "x", false),
            Some((0, h.find("y =").unwrap()))
        );
        assert_eq!(
            item_range(h, 4, "y", false),
            Some((h.find("y =").unwrap(), h.len()))
        );
        let b = "resource \"a\" \"b\" {\n  s = \"}\"\n  n {\n  }\n}\nnext\n";
        assert_eq!(
            item_range(b, 1, "resource", true),
            Some((0, b.find("next").unwrap()))
        );
        assert_eq!(item_range(b, 1, "other", true), None);
        assert_eq!(item_range("a = [\n", 1, "a", false), None);
        assert_eq!(
            first_declaration("was already declared at main.tf:12,1-30."),
            Some(("main.tf".into(), 12))
        );
    }

    #[tokio::test]
    async fn declares_undeclared_variables() {
        let d = diag(
            "Reference to undeclared input variable",
            "An input variable with the name \"region\" has not been declared. This variable can be declared with a variable \"region\" {} block.",
            "main.tf",
            2,
        );
        let fixed = run(
            &UndeclaredVariableFixer,
            "x = var.region\n",
            &[d.clone(), d.clone()],
        )
        .await
        .unwrap();
        assert_eq!(
            fixed.files["variables.tf"],
            "variable \"region\" {\n  description = \"Declared by infraai's fixer: the configuration references var.region.\"\n  default     = \"local-1\"\n}\n"
        );
        let hostile = diag(
            "Reference to undeclared input variable",
            "with the name \"a\\\" {\" has",
            "main.tf",
            1,
        );
        assert_eq!(run(&UndeclaredVariableFixer, "", &[hostile]).await, None);
        assert_eq!(run(&UndeclaredVariableFixer, "", &[]).await, None);
    }

    #[tokio::test]
    async fn removes_unsupported_arguments_and_blocks() {
        let main = "resource \"t\" \"a\" {\n  input = 1\n  bogus = [\n    1,\n  ]\n  weird {\n    x = 1\n  }\n}\n";
        let fixed = run(
            &UnsupportedArgumentFixer,
            main,
            &[
                diag(
                    "Unsupported argument",
                    "An argument named \"bogus\" is not expected here.",
                    "main.tf",
                    3,
                ),
                diag(
                    "Unsupported block type",
                    "Blocks of type \"weird\" are not expected here.",
                    "main.tf",
                    6,
                ),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            fixed.files["main.tf"],
            "resource \"t\" \"a\" {\n  input = 1\n}\n"
        );
        // Wrong line: nothing to do.
        let wrong = diag(
            "Unsupported argument",
            "An argument named \"bogus\" is not expected here.",
            "main.tf",
            2,
        );
        assert_eq!(run(&UnsupportedArgumentFixer, main, &[wrong]).await, None);
    }

    #[tokio::test]
    async fn dedupes_resources() {
        let copy =
            "resource \"t\" \"a\" {\n  input = 1\n}\nresource \"t\" \"a\" {\n  input = 1\n}\n";
        let d = diag(
            "Duplicate resource \"t\" configuration",
            "A t resource named \"a\" was already declared at main.tf:1,1-18. Resource names must be unique per type in each module.",
            "main.tf",
            4,
        );
        let fixed = run(&DuplicateResourceFixer, copy, std::slice::from_ref(&d))
            .await
            .unwrap();
        assert_eq!(
            fixed.files["main.tf"],
            "resource \"t\" \"a\" {\n  input = 1\n}\n"
        );
        let different = copy.replacen("input = 1\n}\nresource", "input = 2\n}\nresource", 1);
        let fixed = run(&DuplicateResourceFixer, &different, &[d])
            .await
            .unwrap();
        assert_eq!(
            fixed.files["main.tf"],
            "resource \"t\" \"a\" {\n  input = 2\n}\nresource \"t\" \"a_2\" {\n  input = 1\n}\n"
        );
        assert_eq!(run(&DuplicateResourceFixer, copy, &[]).await, None);
    }
}
