//! Where flag values come from: the command line, then `CERTPLANE_*` environment variables,
//! then the TOML file of `--config FILE`, then the defaults.
//!
//! Done generically over clap's own description of the command, so a flag added later is
//! covered without code here: every long flag gets an environment variable named after it
//! (`--max-connections` → `CERTPLANE_MAX_CONNECTIONS`) unless it names its own, and a file key
//! is the long flag name. A file value is turned into command-line words appended to the
//! arguments, but only for flags the command line and the environment left unset, so clap
//! itself still parses and validates every value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The flag naming the file, on every command.
pub const CONFIG_FLAG: &str = "config";
const ENV_PREFIX: &str = "CERTPLANE_";

/// The environment variable of a long flag.
fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// Gives every long flag of `cmd` and its subcommands an environment variable.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        if a.get_env().is_some() || a.is_positional() {
            return a;
        }
        match a.get_long().map(env_name) {
            // Help and version are actions, not values.
            Some(env) if !matches!(a.get_action(), ArgAction::Help | ArgAction::Version) => {
                a.env(env)
            }
            _ => a,
        }
    })
    .mut_subcommands(with_env)
}

/// The config file named by `--config` (already parsed) of the innermost command.
fn config_path(matches: &ArgMatches) -> Option<PathBuf> {
    let mut m = matches;
    let mut found = m
        .try_get_one::<PathBuf>(CONFIG_FLAG)
        .ok()
        .flatten()
        .cloned();
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
        if let Some(p) = m.try_get_one::<PathBuf>(CONFIG_FLAG).ok().flatten() {
            found = Some(p.clone());
        }
    }
    found
}

/// The arguments with the config file's values added, or the message to exit with.
pub fn apply(cmd: &Command, args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    // A first pass learns which command runs and which flags are already set; errors (say a
    // required flag the file would give) are left to the real parse.
    let probe = cmd.clone().ignore_errors(true);
    let Ok(matches) = probe.try_get_matches_from(args.clone()) else {
        return Ok(args);
    };
    let Some(path) = config_path(&matches) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("the config file {} is not valid TOML: {e}", path.display()))?;
    // The innermost command and its matches: the flags a key may name.
    let (mut command, mut m, mut name) = (cmd, &matches, cmd.get_name().to_string());
    while let Some((sub_name, sub)) = m.subcommand() {
        let Some(sub_cmd) = command.find_subcommand(sub_name) else {
            break;
        };
        name = format!("{name} {sub_name}");
        command = sub_cmd;
        m = sub;
    }
    let mut out = args;
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !a.is_positional())
            .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version))
            .filter(|_| key != CONFIG_FLAG)
            .ok_or_else(|| {
                format!(
                    "unknown key `{key}` in the config file {}: `{name}` has no flag --{key}",
                    path.display()
                )
            })?;
        let id = arg.get_id().as_str();
        if let Some(ValueSource::CommandLine | ValueSource::EnvVariable) = m.value_source(id) {
            continue;
        }
        let flag = matches!(
            arg.get_action(),
            ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
        );
        let words = words_of(key, value, flag)
            .map_err(|why| format!("the config file {}: key `{key}`: {why}", path.display()))?;
        out.extend(words);
    }
    Ok(out)
}

/// Command-line words for one file value.
fn words_of(key: &str, value: &toml::Value, flag: bool) -> Result<Vec<OsString>, String> {
    use toml::Value as V;
    let one = |v: &V| -> Result<String, String> {
        match v {
            V::String(s) => Ok(s.clone()),
            V::Integer(i) => Ok(i.to_string()),
            V::Float(f) => Ok(f.to_string()),
            V::Boolean(b) => Ok(b.to_string()),
            V::Datetime(d) => Ok(d.to_string()),
            V::Array(_) | V::Table(_) => Err("a list or table where one value belongs".into()),
        }
    };
    if flag {
        return match value {
            V::Boolean(true) => Ok(vec![format!("--{key}").into()]),
            V::Boolean(false) => Ok(Vec::new()),
            _ => Err("this flag takes true or false".into()),
        };
    }
    let values = match value {
        V::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        V::Table(_) => return Err("a table where a value belongs".into()),
        v => vec![one(v)?],
    };
    // `--key=value`, so a value that starts with `-` is not read as a flag.
    Ok(values
        .into_iter()
        .map(|v| OsString::from(format!("--{key}={v}")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_become_words() {
        let w = |k, v: toml::Value, f| words_of(k, &v, f);
        assert_eq!(
            w("max-connections", toml::Value::Integer(5), false),
            Ok(vec![OsString::from("--max-connections=5")])
        );
        assert_eq!(
            w("dev", toml::Value::Boolean(true), true),
            Ok(vec![OsString::from("--dev")])
        );
        assert_eq!(w("dev", toml::Value::Boolean(false), true), Ok(vec![]));
        assert!(w("dev", toml::Value::String("yes".into()), true).is_err());
    }

    #[test]
    fn env_names_follow_the_long_flag() {
        assert_eq!(env_name("max-connections"), "CERTPLANE_MAX_CONNECTIONS");
    }
}
