//! Message text: HTML escaping for untrusted alert text, the 4096-character
//! limit, callback data within 64 bytes.

use crate::wire::{InlineKeyboardButton, InlineKeyboardMarkup};
use infraai_core::{ApprovalRequest, IncidentId, Notification};

/// Telegram's limit on message text, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Telegram's limit on callback data, in bytes.
pub const MAX_CALLBACK_BYTES: usize = 64;

/// Escapes text for `parse_mode: HTML` (the three characters the Bot API
/// requires: `&`, `<`, `>`).
pub fn escape_html(text: &str) -> String {
    // `&` first, so the entities written after it stay as they are.
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts escaped HTML to `max` characters without splitting an entity,
/// ending with `…` when cut. Only call on text whose tags all close before
/// the cut could happen (our tags are in the first line).
pub fn truncate_html(html: &str, max: usize) -> String {
    if html.chars().count() <= max {
        return html.to_string();
    }
    let mut cut: String = html.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
}

/// Longest outcome text kept in an edited request message, in characters.
pub const MAX_OUTCOME_CHARS: usize = 1000;

/// The request message edited to show the outcome: the original text
/// (plain, as Telegram returns it) escaped and cut first, so that the
/// `<b>Outcome</b>` line always survives whole and the HTML stays valid.
pub fn with_outcome(original: &str, who: &str, outcome: &str) -> String {
    let outcome: String = if outcome.chars().count() > MAX_OUTCOME_CHARS {
        let mut o: String = outcome.chars().take(MAX_OUTCOME_CHARS - 1).collect();
        o.push('…');
        o
    } else {
        outcome.to_string()
    };
    let who: String = who.chars().take(64).collect();
    let suffix = format!(
        "\n\n<b>Outcome</b> ({}): {}",
        escape_html(&who),
        escape_html(&outcome)
    );
    let room = MAX_MESSAGE_CHARS.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", truncate_html(&escape_html(original), room))
}

/// Callback data for a button: `approve:<uuid>` is 44 bytes.
pub fn callback_data(verb: &str, incident: Option<IncidentId>) -> String {
    let data = match incident {
        Some(id) => format!("{verb}:{id}"),
        None => verb.to_string(),
    };
    debug_assert!(data.len() <= MAX_CALLBACK_BYTES);
    data
}

/// The approval request message: fields escaped, then limited to 4096 characters.
pub fn approval_message(request: &ApprovalRequest) -> String {
    let mut lines = vec![format!(
        "<b>Approval needed</b> — incident <code>{}</code>",
        request.incident.id
    )];
    lines.extend(request.detail_lines(escape_html));
    lines.push("Reply 1/YES to approve, 2/NO to reject, or STOP AUTONOMY.".into());
    truncate_html(&lines.join("\n"), MAX_MESSAGE_CHARS)
}

/// A notification message.
pub fn notification_message(n: &Notification) -> String {
    let id = n
        .incident_id
        .map(|i| format!(" — incident <code>{i}</code>"))
        .unwrap_or_default();
    let (title, body) = (escape_html(&n.title), escape_html(&n.body));
    truncate_html(&format!("<b>{title}</b>{id}\n{body}"), MAX_MESSAGE_CHARS)
}

/// Approve / Reject / STOP AUTONOMY buttons.
pub(crate) fn approval_keyboard(id: IncidentId) -> InlineKeyboardMarkup {
    let button = |text: &str, data: String| InlineKeyboardButton {
        text: text.into(),
        callback_data: data,
    };
    InlineKeyboardMarkup {
        inline_keyboard: vec![
            vec![
                button("Approve", callback_data("approve", Some(id))),
                button("Reject", callback_data("reject", Some(id))),
            ],
            vec![button("STOP AUTONOMY", callback_data("stop", None))],
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_truncation() {
        assert_eq!(escape_html("<b>x</b> & y"), "&lt;b&gt;x&lt;/b&gt; &amp; y");
        let long = escape_html(&"<&>".repeat(3000));
        let cut = truncate_html(&long, MAX_MESSAGE_CHARS);
        assert!(cut.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(cut.ends_with('…'));
        let body = cut.trim_end_matches('…');
        // No entity is split: every '&' starts a complete entity.
        for (i, _) in body.match_indices('&') {
            let rest = &body[i..];
            assert!(
                rest.starts_with("&lt;") || rest.starts_with("&gt;") || rest.starts_with("&amp;")
            );
        }
        assert_eq!(truncate_html("short", 10), "short");
    }

    #[test]
    fn an_outcome_survives_a_long_original_whole() {
        let original = format!("Approval needed\nReasoning: {}", "<&>".repeat(3000));
        let edited = with_outcome(&original, "ada<x>", "Approved; executing scale up.");
        assert!(edited.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(
            edited.ends_with("…\n\n<b>Outcome</b> (ada&lt;x&gt;): Approved; executing scale up."),
            "{}",
            &edited[edited.len() - 80..]
        );
        // Valid HTML: the only tags are the outcome's, and no entity is split.
        assert_eq!(edited.matches('<').count(), 2);
        let body = edited.split("…\n\n").next().unwrap_or_default();
        for (i, _) in body.match_indices('&') {
            let rest = &body[i..];
            assert!(
                rest.starts_with("&lt;") || rest.starts_with("&gt;") || rest.starts_with("&amp;"),
                "{}",
                &rest[..rest.len().min(8)]
            );
        }
        // A huge outcome is itself cut, and still leaves room for the original.
        let edited = with_outcome("short", "ada", &"x".repeat(5000));
        assert!(edited.starts_with("short\n\n<b>Outcome</b> (ada): xxx"));
        assert!(edited.chars().count() <= MAX_MESSAGE_CHARS);
        assert_eq!(
            with_outcome("a < b", "ada", "ok"),
            "a &lt; b\n\n<b>Outcome</b> (ada): ok"
        );
    }

    #[test]
    fn callback_data_fits() {
        let id = IncidentId::new();
        assert!(callback_data("approve", Some(id)).len() <= MAX_CALLBACK_BYTES);
        assert_eq!(callback_data("stop", None), "stop");
    }
}
