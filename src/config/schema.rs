//! How a configuration key is described: [`Key`] (name, default, docs, flag form) and the
//! `declare_keys!` macro that turns the one table in `keys.rs` into the [`Config`] struct, its
//! `Default`, [`Config::set`] and [`KEYS`]. The TOML, environment, flag and `--help` forms and
//! the documentation tables are all derived from [`KEYS`].
//!
//! [`Config`]: super::Config
//! [`Config::set`]: super::Config::set
//! [`KEYS`]: super::KEYS

/// A key's default as the documentation shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDefault {
    /// A value in the key's own text form: the default *is* this text, parsed like any
    /// configured value (shown as code, e.g. `60`).
    Text(&'static str),
    /// A default computed or left unset, described in words (e.g. "number of cores").
    Described(&'static str),
}

/// How a key is written as a command-line flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagForm {
    /// `--key VALUE`.
    Value,
    /// `--key` alone means `true`; `--key VALUE` still takes a value.
    Switch,
}

/// One configuration key, as declared in the table.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The name in the TOML file (`tick_hz`).
    pub name: &'static str,
    /// The default.
    pub default: KeyDefault,
    /// What the key does, one line (README table, `--help`, rustdoc).
    pub doc: &'static str,
    /// What the key bounds or changes, for the sizing guide (tuning/config.md).
    pub tuning: &'static str,
    /// How the flag is written.
    pub flag: FlagForm,
}

impl Key {
    /// The flag's long name without dashes in front (`tick-hz`).
    pub fn long(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The environment variable (`FRAMECAST_TICK_HZ`).
    pub fn env(&self) -> String {
        format!("FRAMECAST_{}", self.name.to_ascii_uppercase())
    }

    /// The default as Markdown: code for a value, words otherwise.
    pub fn default_markdown(&self) -> String {
        match self.default {
            KeyDefault::Text(text) => format!("`{text}`"),
            KeyDefault::Described(words) => words.to_string(),
        }
    }

    /// The `--help` line: the doc without Markdown, then the default.
    pub fn help(&self) -> String {
        let shown = match self.default {
            KeyDefault::Text(text) | KeyDefault::Described(text) => text,
        };
        format!("{} [default: {shown}]", self.doc.replace('`', ""))
    }
}

/// Types a key's parser as `fn(&str) -> Result<T, String>` (so closures infer `T`).
pub(crate) fn parser<T>(f: fn(&str) -> Result<T, String>) -> fn(&str) -> Result<T, String> {
    f
}

/// The value of a `KeyDefault::Text` default: the text through the key's parser.
pub(crate) fn parse_default<T>(name: &str, parse: fn(&str) -> Result<T, String>, text: &str) -> T {
    parse(text).unwrap_or_else(|e| panic!("declared default of `{name}` does not parse: {e}"))
}

/// Declares every key once; see `keys.rs`. Each entry is
/// `name: Type { default: "text" | expr => "words", parse: fn, [flag: switch,] doc: "…", tuning: "…" }`,
/// then `;` and the fields that are not keys (`name: Type = default`).
macro_rules! declare_keys {
    (
        $(
            $name:ident : $ty:ty {
                default: $default:expr $(=> $words:literal)?,
                parse: $parse:expr,
                $(flag: $form:ident,)?
                doc: $doc:literal,
                tuning: $tuning:literal $(,)?
            }
        )*
        ;
        $( $(#[$xmeta:meta])* $xname:ident : $xty:ty = $xdefault:expr ),* $(,)?
    ) => {
        /// The configuration of one server: every key of [`KEYS`], then what only the TOML file
        /// or the embedding program sets. [`Config::check`] turns it into a
        /// [`ValidConfig`](super::ValidConfig).
        #[derive(Clone, Debug)]
        pub struct Config {
            $( #[doc = $doc] pub $name: $ty, )*
            $( $(#[$xmeta])* pub $xname: $xty, )*
        }

        impl ::std::default::Default for Config {
            fn default() -> Self {
                Config {
                    $( $name: $crate::config::schema::default_value!(
                        $name, $ty, $parse, $default $(, $words)?
                    ), )*
                    $( $xname: $xdefault, )*
                }
            }
        }

        impl Config {
            /// Sets one key from its text form, checking it; the error names the key.
            pub fn set(&mut self, key: &str, value: &str) -> Result<(), $crate::config::ConfigError> {
                let invalid = |message: String| $crate::config::ConfigError::invalid(key, message);
                match key {
                    $( stringify!($name) => {
                        self.$name =
                            $crate::config::schema::parser::<$ty>($parse)(value).map_err(invalid)?
                    } )*
                    other => return Err($crate::config::ConfigError::UnknownKey(other.to_string())),
                }
                Ok(())
            }
        }

        /// Every configuration key, in the order `--help` and the docs list them.
        pub const KEYS: &[$crate::config::Key] = &[
            $( $crate::config::Key {
                name: stringify!($name),
                default: $crate::config::schema::default_shown!($default $(, $words)?),
                doc: $doc,
                tuning: $tuning,
                flag: $crate::config::schema::flag_form!($($form)?),
            }, )*
        ];
    };
}
pub(crate) use declare_keys;

/// The value of a declared default (helper of `declare_keys!`).
macro_rules! default_value {
    ($name:ident, $ty:ty, $parse:expr, $text:expr) => {
        $crate::config::schema::parse_default::<$ty>(stringify!($name), $parse, $text)
    };
    ($name:ident, $ty:ty, $parse:expr, $value:expr, $words:literal) => {
        $value
    };
}
pub(crate) use default_value;

/// How a declared default is shown (helper of `declare_keys!`).
macro_rules! default_shown {
    ($text:expr) => {
        $crate::config::schema::KeyDefault::Text($text)
    };
    ($value:expr, $words:literal) => {
        $crate::config::schema::KeyDefault::Described($words)
    };
}
pub(crate) use default_shown;

/// The flag form of a key (helper of `declare_keys!`).
macro_rules! flag_form {
    () => {
        $crate::config::FlagForm::Value
    };
    (switch) => {
        $crate::config::FlagForm::Switch
    };
}
pub(crate) use flag_form;
