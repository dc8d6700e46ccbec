//! Messages in Block Kit, within Slack's limits, with untrusted text escaped.

use infraai_core::{ApprovalRequest, IncidentId};
use serde_json::{json, Value};

/// Slack's limit on a section block's text, in characters.
pub const MAX_TEXT_CHARS: usize = 3000;
/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;

/// Escapes the three characters Slack's mrkdwn gives meaning to (`&`, `<`,
/// `>`), so alert text shows literally and can form no link or mention
/// (`<!channel>`, `<@U…>` need angle brackets; messages are posted without
/// `link_names`, so a bare `@here` stays text).
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `max` characters (ending in `…`), never inside an entity.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_TEXT_CHARS)}})
}

/// Lines packed into as few sections as fit (each at most
/// [`MAX_TEXT_CHARS`]), at most `max_blocks` of them.
fn sections(lines: &[String], max_blocks: usize) -> Vec<Value> {
    let mut texts: Vec<String> = Vec::new();
    for line in lines {
        let line = cut(line, MAX_TEXT_CHARS);
        match texts.last_mut() {
            Some(t) if t.chars().count() + 1 + line.chars().count() <= MAX_TEXT_CHARS => {
                t.push('\n');
                t.push_str(&line);
            }
            _ => texts.push(line),
        }
    }
    if texts.len() > max_blocks {
        texts.truncate(max_blocks);
        if let Some(last) = texts.last_mut() {
            *last = cut(&format!("{last}\n…"), MAX_TEXT_CHARS);
        }
    }
    texts.iter().map(|t| section(t)).collect()
}

fn button(text: &str, action_id: &str, value: String, style: Option<&str>) -> Value {
    let mut b = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    });
    if let Some(style) = style {
        b["style"] = json!(style);
    }
    b
}

/// Approve / Reject (for an incident) and STOP AUTONOMY; the values are the
/// button ids core reads ([`infraai_core::HumanCommand::from_button_id`]).
pub(crate) fn buttons(incident: Option<IncidentId>) -> Value {
    let mut elements = Vec::new();
    if let Some(id) = incident {
        elements.push(button(
            "Approve",
            "infraai_approve",
            format!("approve:{id}"),
            Some("primary"),
        ));
        elements.push(button(
            "Reject",
            "infraai_reject",
            format!("reject:{id}"),
            Some("danger"),
        ));
    }
    elements.push(button("STOP AUTONOMY", "infraai_stop", "stop".into(), None));
    json!({"type": "actions", "block_id": "infraai_buttons", "elements": elements})
}

/// `chat.postMessage` of an approval request: the same content as the
/// other channels, then the buttons.
pub(crate) fn approval(channel: &str, request: &ApprovalRequest) -> Value {
    let id = request.incident.id;
    let title = format!("*Approval needed* — incident `{id}`");
    let lines = request.detail_lines(escape_mrkdwn);
    let mut blocks = vec![section(&title)];
    blocks.extend(sections(&lines, MAX_BLOCKS - 2));
    blocks.push(buttons(Some(id)));
    json!({
        "channel": channel,
        "text": format!("Approval needed: incident {id}"),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// `chat.postMessage` of a notification.
pub(crate) fn notification(channel: &str, title: &str, body: &str) -> Value {
    let lines = vec![format!("*{}*", escape_mrkdwn(title)), escape_mrkdwn(body)];
    json!({
        "channel": channel,
        "text": cut(title, MAX_TEXT_CHARS),
        "blocks": sections(&lines, MAX_BLOCKS),
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// `chat.update` of a request message once decided: its blocks without the
/// buttons, then the outcome and who decided.
pub(crate) fn outcome(
    channel: &str,
    ts: &str,
    original: &[Value],
    who: &str,
    outcome: &str,
) -> Value {
    let mut blocks: Vec<Value> = original
        .iter()
        .filter(|b| b["type"] != "actions")
        .take(MAX_BLOCKS - 1)
        .cloned()
        .collect();
    let line = format!(
        "*Outcome* ({}): {}",
        escape_mrkdwn(who),
        escape_mrkdwn(outcome)
    );
    blocks.push(section(&line));
    json!({
        "channel": channel,
        "ts": ts,
        "text": cut(&format!("Outcome ({who}): {outcome}"), MAX_TEXT_CHARS),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_cutting_and_packing() {
        assert_eq!(
            escape_mrkdwn("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
        let long = cut(&"&amp;".repeat(1000), 3000);
        assert!(
            long.chars().count() <= 3000 && long.ends_with(";…"),
            "{}",
            &long[long.len() - 10..]
        );
        let lines: Vec<String> = (0..200)
            .map(|i| format!("{i}: {}", "x".repeat(2000)))
            .collect();
        let packed = sections(&lines, 48);
        assert_eq!(packed.len(), 48);
        for s in &packed {
            assert!(s["text"]["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
        }
        assert!(packed[47]["text"]["text"].as_str().unwrap().ends_with('…'));
        let short = sections(&["a".into(), "b".into()], 48);
        assert_eq!(short.len(), 1);
        assert_eq!(short[0]["text"]["text"], "a\nb");
    }
}
