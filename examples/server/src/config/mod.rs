//! Configuration: one struct, [`Config`], in sections. Each key is declared
//! once, as a field: its flag (`--key-name`), environment variable and TOML
//! key (`key_name`, in the file `--config` names) come from that field. A
//! flag wins over its variable, the variable over the file, the file over
//! the default. An empty value means unset (`GEMINI_API_KEY=` turns Gemini
//! off even when the file has a key). `docs/configuration.md` lists every key;
//! a test keeps it in step with this file.

mod sections;
mod sign_in;

pub use sections::*;
pub use sign_in::SignInSettings;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The whole configuration. No `Debug`: it holds secrets.
#[derive(Parser)]
#[command(
    name = "infraai-server",
    version,
    about = "infraai: plan, deploy and operate infrastructure with a human in the loop"
)]
pub struct Config {
    /// TOML configuration file (keys as the flags, in snake_case).
    #[arg(long, env = "INFRAAI_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub store: StoreSettings,
    #[command(flatten)]
    pub llm: LlmSettings,
    #[command(flatten)]
    pub cloud: CloudSettings,
    #[command(flatten)]
    pub gcp: GcpSettings,
    #[command(flatten)]
    pub aws: AwsSettings,
    #[command(flatten)]
    pub telegram: TelegramSettings,
    #[command(flatten)]
    pub discord: DiscordSettings,
    #[command(flatten)]
    pub slack: SlackSettings,
    #[command(flatten)]
    pub mcp: McpSettings,
    #[command(flatten)]
    pub ops: OpsSettings,
    #[command(flatten)]
    pub autonomy: AutonomySettings,
    #[command(flatten)]
    pub sign_in: SignInSettings,
    /// Partial settings that leave a feature off (said at start-up).
    #[arg(skip)]
    pub notes: Vec<String>,
}

impl Config {
    /// Reads this process's flags, environment and configuration file.
    /// `--help`, `--version` and malformed flags end the process as clap does.
    pub fn load() -> anyhow::Result<Self> {
        let args: Vec<OsString> = std::env::args_os().collect();
        let given = command()
            .try_get_matches_from(&args)
            .unwrap_or_else(|e| e.exit());
        Self::layered(args, given)
    }

    /// Reads `args` (the program name first), the environment and the file
    /// `--config` names.
    pub fn load_from<T: Into<OsString>>(args: impl IntoIterator<Item = T>) -> anyhow::Result<Self> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let given = command().try_get_matches_from(&args)?;
        Self::layered(args, given)
    }

    /// The cloud adapter (resolved by [`Config::load`]).
    pub fn cloud(&self) -> CloudChoice {
        self.cloud.cloud.unwrap_or(CloudChoice::Local)
    }

    /// The file's keys that neither a flag nor a variable gives are parsed
    /// as flags placed before the real ones: the same parsers check them.
    fn layered(mut args: Vec<OsString>, given: ArgMatches) -> anyhow::Result<Self> {
        let mut matches = match given.get_one::<PathBuf>("config") {
            None => given,
            Some(path) => {
                let from_file = file_args(path, &given)?;
                let at = args.len().min(1);
                args.splice(at..at, from_file);
                command()
                    .try_get_matches_from(&args)
                    .with_context(|| format!("configuration file {}", path.display()))?
            }
        };
        // An empty value unsets a key that has no default.
        for arg in command().get_arguments() {
            let id = arg.get_id().as_str();
            let empty = matches.get_raw(id).is_some_and(|mut values| {
                values.all(|v| v.to_str().is_some_and(|s| s.trim().is_empty()))
            });
            if empty && arg.get_default_values().is_empty() {
                matches.try_clear_id(id)?;
            }
        }
        let mut config = Self::from_arg_matches_mut(&mut matches)?;
        config.resolve()?;
        Ok(config)
    }

    /// Checks what one key cannot check alone and fills the defaults that
    /// depend on other keys.
    fn resolve(&mut self) -> anyhow::Result<()> {
        for list in [
            &mut self.gcp.gcp_ssh_ranges,
            &mut self.aws.aws_ssh_ranges,
            &mut self.telegram.telegram_approvers,
            &mut self.discord.discord_approvers,
            &mut self.discord.discord_approver_roles,
            &mut self.slack.slack_approvers,
            &mut self.slack.slack_approver_groups,
            &mut self.sign_in.oidc_role_map,
        ] {
            list.retain(|v| !v.is_empty());
        }
        self.store.check()?;
        let mut notes = channel_notes(&self.telegram, &self.discord, &self.slack);
        let project = self.gcp.gcp_project.is_some();
        let cloud = match self.cloud.cloud {
            None if project => CloudChoice::Gcp,
            None => CloudChoice::Local,
            Some(c) => c,
        };
        self.cloud.cloud = Some(cloud);
        match cloud {
            CloudChoice::Gcp if !project => {
                bail!("cloud \"gcp\" needs a project (INFRAAI_GCP_PROJECT or gcp_project)")
            }
            CloudChoice::Gcp => {
                self.cloud
                    .region
                    .get_or_insert_with(|| "us-central1".into());
            }
            CloudChoice::Aws => {
                let region = self.aws.region().to_string();
                self.cloud.region.get_or_insert(region);
            }
            _ if project => notes.push(format!(
                "gcp: a project is set but the cloud is {cloud:?}; the GCP adapters are not used"
            )),
            _ => {}
        }
        self.llm.check(&mut notes)?;
        self.notes = notes;
        Ok(())
    }
}

/// What a partly configured chat channel lacks.
fn channel_notes(tg: &TelegramSettings, dc: &DiscordSettings, sl: &SlackSettings) -> Vec<String> {
    let mut notes = Vec::new();
    match (&tg.telegram_bot_token, tg.telegram_chat_id) {
        (Some(_), None) => {
            notes.push("telegram: bot token set but no chat id (INFRAAI_TELEGRAM_CHAT_ID)".into())
        }
        (None, Some(_)) => {
            notes.push("telegram: chat id set but no bot token (INFRAAI_TELEGRAM_BOT_TOKEN)".into())
        }
        _ => {}
    }
    let set = [
        dc.discord_public_key.is_some(),
        dc.discord_bot_token.is_some(),
        dc.discord_channel_id.is_some(),
    ];
    if set.contains(&true) && set.contains(&false) {
        notes.push("discord: needs all of public key, bot token and channel id (INFRAAI_DISCORD_PUBLIC_KEY, INFRAAI_DISCORD_BOT_TOKEN, INFRAAI_DISCORD_CHANNEL_ID)".into());
    }
    let set = [
        sl.slack_bot_token.is_some(),
        sl.slack_signing_secret.is_some(),
        sl.slack_channel_id.is_some(),
    ];
    if set.contains(&true) && set.contains(&false) {
        notes.push("slack: needs all of bot token, signing secret and channel id (INFRAAI_SLACK_BOT_TOKEN, INFRAAI_SLACK_SIGNING_SECRET, INFRAAI_SLACK_CHANNEL_ID)".into());
    }
    notes
}

/// The flags and variables: every text value is trimmed (a value parser
/// of their own trims those with a default).
pub fn command() -> clap::Command {
    Config::command().mut_args(|arg| {
        let text = arg.get_value_parser().type_id() == std::any::TypeId::of::<String>();
        if text && arg.get_default_values().is_empty() {
            arg.value_parser(|s: &str| Ok::<_, std::convert::Infallible>(s.trim().to_string()))
        } else {
            arg
        }
    })
}

/// The file's keys as `--key=value` flags, for the keys neither a flag nor a
/// variable gives.
fn file_args(path: &Path, given: &ArgMatches) -> anyhow::Result<Vec<OsString>> {
    let at = || format!("configuration file {}", path.display());
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", at()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", at()))?;
    let command = command();
    let mut args = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == key.as_str() && key != "config")
            .with_context(|| format!("{}: unknown key {key:?}", at()))?;
        if matches!(
            given.value_source(&key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let list = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            toml::Value::Array(items) if list => items.into_iter().map(scalar).collect(),
            v if !list => scalar(v).map(|s| vec![s]),
            _ => None,
        };
        let values = values.with_context(|| {
            let expected = if list { "a list of" } else { "one" };
            format!("{}: {key} must be {expected} string(s) or number(s)", at())
        })?;
        let long = arg.get_long().unwrap_or(key.as_str());
        args.extend(
            values
                .iter()
                .map(|v| OsString::from(format!("--{long}={v}"))),
        );
    }
    Ok(args)
}

fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}
