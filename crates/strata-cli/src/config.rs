//! `strata serve --config FILE`: a TOML file for everything `serve`'s flags set. A flag
//! or its environment variable wins over the file, and the file over the flag's default.
//! It only fills in the parsed arguments; it opens nothing and serves nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::serve::{LogFormat, ServeArgs};

/// The file's keys: the flags' names without the dashes' prefix. Relative paths are
/// relative to the file's directory, so the file means the same from any working
/// directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ServeConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    tokens: Option<PathBuf>,
    insecure: Option<bool>,
    log_format: Option<LogFormat>,
    accept_data_loss: Option<bool>,
    store: Option<String>,
    replica: Option<String>,
    read_store: Option<String>,
    redis: Option<String>,
}

impl ServeConfig {
    /// Reads and checks the file at `path`.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for file in [&mut config.data_dir, &mut config.tokens]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        Ok(config)
    }
}

/// Fills in `data_dir` and `args` from `args.config`, if one is given, wherever neither
/// the command line nor the environment set a value. `matches` are the whole command
/// line's, `serve`'s under them.
pub(crate) fn apply(
    data_dir: &mut PathBuf,
    args: &mut ServeArgs,
    matches: &ArgMatches,
) -> anyhow::Result<()> {
    let Some(path) = &args.config else {
        return Ok(());
    };
    let config = ServeConfig::load(path)?;
    let serve = matches.subcommand_matches("serve").unwrap_or(matches);
    let unset = |matches: &ArgMatches, id: &str| {
        matches!(
            matches.value_source(id),
            None | Some(ValueSource::DefaultValue)
        )
    };
    if let Some(dir) = config.data_dir
        && unset(matches, "data_dir")
    {
        *data_dir = dir;
    }
    if let Some(listen) = config.listen
        && unset(serve, "listen")
    {
        args.listen = listen;
    }
    if let Some(tokens) = config.tokens
        && unset(serve, "tokens")
    {
        args.tokens = Some(tokens);
    }
    if let Some(insecure) = config.insecure
        && unset(serve, "insecure")
    {
        args.insecure = insecure;
    }
    if let Some(format) = config.log_format
        && unset(serve, "log_format")
    {
        args.log_format = format;
    }
    if let Some(url) = config.read_store
        && unset(serve, "read_store")
    {
        args.read_store = Some(url);
    }
    if let Some(redis) = config.redis
        && unset(serve, "redis")
    {
        args.redis = Some(redis);
    }
    if let Some(accept) = config.accept_data_loss
        && unset(serve, "accept_data_loss")
    {
        args.write.accept_data_loss = accept;
    }
    if let Some(store) = config.store
        && unset(serve, "store")
    {
        args.store = Some(store);
    }
    if let Some(replica) = config.replica
        && unset(serve, "replica")
    {
        args.replica = Some(replica);
    }
    Ok(())
}
