//! Configuration layering: flags over variables over the TOML file over
//! defaults, empty values, lists, and what is refused.

use infraai_server::config::{command, CloudChoice, Config};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// The tests set configuration variables: one at a time.
static ENV: Mutex<()> = Mutex::new(());

/// `args` after the program name, `env` set (every other configuration
/// variable unset) and `file` as the configuration file.
fn load(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> anyhow::Result<Config> {
    let _one = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for arg in command().get_arguments() {
        if let Some(name) = arg.get_env() {
            std::env::remove_var(name);
        }
    }
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("infraai.toml");
    let mut all = vec!["infraai-server".to_string()];
    if let Some(text) = file {
        std::fs::write(&path, text)?;
        all.extend(["--config".into(), path.display().to_string()]);
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let config = Config::load_from(all);
    for (k, _) in env {
        std::env::remove_var(k);
    }
    config
}

#[test]
fn flags_win_over_variables_over_the_file_over_defaults() {
    let file = "listen = \"127.0.0.1:9000\"\noperator_name = \"ada\"\ntelegram_bot_token = \"1:x\"\npublic_url = \"https://file\"\nlease_secs = 1\nfeedback_delay_secs = 5\n";
    let env = [
        ("INFRAAI_OPERATOR_NAME", "eve"),
        ("INFRAAI_PUBLIC_URL", " "),
        ("INFRAAI_FEEDBACK_DELAY_SECS", "7"),
    ];
    let c = load(&["--operator-name", " grace "], &env, Some(file)).unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.operator_name, "grace");
    assert!(c.server.public_url.is_none(), "an empty variable unsets");
    assert_eq!(c.ops.feedback_delay_secs, Duration::from_secs(7));
    assert_eq!(c.ops.lease_secs, Duration::from_secs(3), "at least 3");
    assert_eq!(c.server.data_dir, PathBuf::from("./data"));
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    let c = load(&[], &env, Some(file)).unwrap();
    assert_eq!(c.server.operator_name, "eve");
    let c = load(&[], &[], Some(file)).unwrap();
    assert_eq!(c.server.operator_name, "ada");
    assert_eq!(c.server.public_url.as_deref(), Some("https://file"));
    let c = load(&["--operator-name="], &[], Some(file)).unwrap();
    assert_eq!(c.server.operator_name, "operator", "empty is the default");
    assert_eq!(c.ops.approval_timeout_secs, Duration::from_secs(3600));
    assert_eq!(c.cloud(), CloudChoice::Local);
}

#[test]
fn lists_come_from_commas_or_arrays_without_empty_items() {
    let file =
        "telegram_approvers = [\"1\", \"2\"]\ndiscord_approvers = [\"7\"]\ngcp_ssh_ranges = []\n";
    let env = [("INFRAAI_DISCORD_APPROVERS", " 8, ,9 ")];
    let c = load(&["--aws-ssh-ranges", "10.0.0.0/8,"], &env, Some(file)).unwrap();
    assert_eq!(c.telegram.telegram_approvers, ["1", "2"]);
    assert_eq!(c.discord.discord_approvers, ["8", "9"]);
    assert!(c.gcp.gcp_ssh_ranges.is_empty());
    assert_eq!(c.aws.aws_ssh_ranges, ["10.0.0.0/8"]);
    let c = load(
        &["--telegram-approvers", "3", "--telegram-approvers", "4"],
        &[],
        None,
    );
    assert_eq!(c.unwrap().telegram.telegram_approvers, ["3", "4"]);
}

#[test]
fn one_llm_provider_at_most_with_budget_and_cache_settings() {
    let file = "openai_model = \"llama3.1\"\nopenai_base_url = \"http://localhost:11434/v1\"\nllm_token_budget_per_hour = 1234\ndecision_cache_ttl_secs = 0\n";
    let c = load(&[], &[], Some(file)).unwrap();
    assert!(c.llm.openai_api_key.is_none());
    assert_eq!(c.llm.openai_model.as_deref(), Some("llama3.1"));
    assert_eq!(
        c.llm.openai_base_url.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_eq!(c.llm.llm_token_budget_per_hour, 1234);
    assert_eq!(c.llm.decision_cache_ttl_secs, Duration::ZERO);

    let defaults = load(&[], &[], None).unwrap();
    assert!(defaults.llm.gemini_api_key.is_none() && defaults.llm.openai_model.is_none());
    assert_eq!(defaults.llm.llm_token_budget_per_hour, 500_000);
    assert_eq!(
        defaults.llm.decision_cache_ttl_secs,
        Duration::from_secs(600)
    );

    let both = load(
        &["--openai-model", "gpt-4o-mini"],
        &[("GEMINI_API_KEY", "g")],
        None,
    );
    let e = both.err().unwrap();
    assert!(e.to_string().contains("set only one"), "{e}");
    let e = load(&["--openai-api-key", "sk-x"], &[], None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("needs a model"), "{e}");
    let c = load(
        &["--gemini-base-url", "https://proxy.example/v1beta"],
        &[("GEMINI_API_KEY", "g"), ("INFRAAI_OPENAI_MODEL", "")],
        None,
    )
    .unwrap();
    assert_eq!(c.llm.gemini_api_key.as_deref(), Some("g"));
    assert!(c.llm.gemini_model.is_none());
}

#[test]
fn unknown_file_keys_wrong_types_and_bad_names_are_refused() {
    for file in [
        "listn = \"x\"",
        "config = \"other.toml\"",
        "listen = [\"127.0.0.1:1\"]",
        "telegram_approvers = \"1\"",
        "lease_secs = true",
        "listen = \"nowhere\"",
    ] {
        assert!(load(&[], &[], Some(file)).is_err(), "{file}");
    }
    assert!(load(&["--operator-name", "a b"], &[], None).is_err());
    assert!(load(&["--cloud", "azure"], &[], None).is_err());
    assert!(
        load(&["--cloud", "gcp"], &[], None).is_err(),
        "needs a project"
    );
    let c = load(&[], &[("INFRAAI_GCP_PROJECT", "p")], None).unwrap();
    assert_eq!(c.cloud(), CloudChoice::Gcp);
    assert_eq!(c.cloud.region.as_deref(), Some("us-central1"));
    let c = load(&["--cloud", "simulated", "--gcp-project", "p"], &[], None).unwrap();
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    let c = load(&["--cloud=aws"], &[("AWS_REGION", "eu-west-1")], None).unwrap();
    assert_eq!(c.cloud.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn database_url_selects_postgres_and_replica_ids_are_checked() {
    let file = "database_url = \"postgres://u:pw-secret@db:5432/infraai\"\n";
    let c = load(&[], &[], Some(file)).unwrap();
    let url = c.store.database_url.expect("postgres selected");
    assert_eq!(url.expose(), "postgres://u:pw-secret@db:5432/infraai");
    assert!(!format!("{url:?} {url}").contains("pw-secret"));
    assert!(c
        .server
        .replica_id
        .ends_with(&format!("-{}", std::process::id())));

    let c = load(&["--replica-id", "eu-1"], &[], None).unwrap();
    assert!(c.store.database_url.is_none(), "SQLite stays the default");
    assert_eq!(c.server.replica_id, "eu-1");

    for args in [
        &["--database-url", "mysql://u:pw-secret@db/x"][..],
        &[
            "--database-url",
            "postgres://u:pw-secret@db/x",
            "--database",
            "x.db",
        ],
        &["--replica-id", "bad id"],
    ] {
        let err = load(args, &[], None).err().expect("refused");
        assert!(!format!("{err:#}").contains("pw-secret"), "{err:#}");
    }
}

#[test]
fn secrets_are_never_printed_by_help() {
    let env = [
        ("GEMINI_API_KEY", "sk-hidden1"),
        ("INFRAAI_DATABASE_URL", "postgres://u:pw-hidden2@db/x"),
        ("AWS_SECRET_ACCESS_KEY", "hidden3"),
    ];
    let _one = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    let help = command().render_long_help().to_string();
    for (k, _) in env {
        std::env::remove_var(k);
    }
    assert!(!help.contains("hidden"), "{help}");
    // A new secret key must hide its variable's value too.
    for arg in command().get_arguments() {
        let id = arg.get_id().as_str();
        let secret = id.ends_with("_token")
            || id.ends_with("api_key")
            || id.contains("secret")
            || id == "database_url";
        assert_eq!(secret, arg.is_hide_env_values_set(), "{id}");
    }
}
