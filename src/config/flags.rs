//! Every key as a command-line flag `--<key-with-dashes>` that also reads `FRAMECAST_<KEY>`
//! (a flag wins over its variable), built from [`KEYS`] with clap's builder API. Flatten
//! [`KeyFlags`] into a clap derive parser and [`apply`](KeyFlags::apply) it after the file.

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use super::{Config, ConfigError, FlagForm, Key, KEYS};

/// The keys given as flags or environment variables, in [`KEYS`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFlags {
    values: Vec<(&'static str, String)>,
}

impl KeyFlags {
    /// Sets every given key on `config` (after the file: flags and environment win over it).
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        self.values
            .iter()
            .try_for_each(|(key, value)| config.set(key, value))
    }
}

/// The clap argument of one key.
fn arg(key: &Key) -> Arg {
    let arg = Arg::new(key.name)
        .long(key.long())
        .env(key.env())
        .value_name(key.name.to_ascii_uppercase())
        .help(key.help());
    match key.flag {
        FlagForm::Value => arg,
        FlagForm::Switch => arg.num_args(0..=1).default_missing_value("true"),
    }
}

impl Args for KeyFlags {
    fn augment_args(cmd: Command) -> Command {
        KEYS.iter().fold(cmd, |cmd, key| cmd.arg(arg(key)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for KeyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let values = KEYS
            .iter()
            .filter_map(|key| {
                let value = matches.get_one::<String>(key.name)?;
                Some((key.name, value.clone()))
            })
            .collect();
        Ok(KeyFlags { values })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
