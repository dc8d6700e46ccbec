//! `docs/configuration.md` lists every configuration key: its part between
//! the markers is generated from `infraai_server::config::Config`, and this
//! test fails when it differs (a key added, renamed, re-documented or with a
//! new default). `INFRAAI_UPDATE_DOCS=1 cargo test -p infraai-server --test
//! configuration_reference` rewrites it.

use std::fmt::Write;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
const BEGIN: &str = "<!-- keys: generated from examples/server/src/config/sections.rs -->\n";
const END: &str = "<!-- end of the generated keys -->\n";

/// One table per section: TOML key, flag, variable, default, meaning.
fn keys() -> String {
    let command = infraai_server::config::command();
    let mut out = String::new();
    let mut section = None;
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let heading = arg.get_help_heading().unwrap_or("General");
        if section != Some(heading) {
            section = Some(heading);
            out.push_str(&format!("\n### {heading}\n\n"));
            out.push_str("| TOML key | Flag | Environment | Default | Meaning |\n");
            out.push_str("|---|---|---|---|---|\n");
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let (help, stated) = match help.split_once(" [default: ") {
            Some((text, rest)) => (
                text.to_string(),
                rest.split_once(']').map(|r| r.0.to_string()),
            ),
            None => (help.clone(), None),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        let default = match stated {
            Some(text) => text,
            None if arg.is_hide_default_value_set() || defaults.is_empty() => "—".into(),
            None => defaults.join(", "),
        };
        let mut meaning = help.trim_end_matches('.').to_string();
        if matches!(arg.get_action(), clap::ArgAction::Append) {
            meaning.push_str(" (a list: comma separated in a flag or variable, an array in TOML)");
        }
        if arg.is_hide_env_values_set() {
            meaning.push_str(" (secret: never printed)");
        }
        let id = arg.get_id().as_str();
        let long = arg.get_long().unwrap_or(id);
        let key = if id == "config" {
            "—".to_string()
        } else {
            format!("`{id}`")
        };
        writeln!(
            out,
            "| {key} | `--{long}` | `{env}` | {default} | {meaning}. |"
        )
        .unwrap();
    }
    out
}

#[test]
fn every_configuration_key_is_documented() {
    let text = std::fs::read_to_string(DOC).unwrap_or_default();
    let (head, rest) = text.split_once(BEGIN).unwrap_or((text.as_str(), END));
    let (_, tail) = rest.split_once(END).unwrap_or(("", ""));
    let want = format!("{head}{BEGIN}{}\n{END}{tail}", keys());
    if std::env::var_os("INFRAAI_UPDATE_DOCS").is_some() {
        std::fs::write(DOC, &want).unwrap();
        return;
    }
    assert!(
        text == want,
        "docs/configuration.md is not what the configuration declares; rewrite it with\n\
         INFRAAI_UPDATE_DOCS=1 cargo test -p infraai-server --test configuration_reference"
    );
    // Each key, flag and variable appears in the document.
    for arg in infraai_server::config::command().get_arguments() {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            let env = env.to_string_lossy();
            for name in [format!("`{env}`"), format!("`--{long}`")] {
                assert!(
                    text.contains(&name),
                    "{name} is not in docs/configuration.md"
                );
            }
        }
    }
}
