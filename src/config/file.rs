//! The TOML file as a configuration source: every top-level key goes through
//! [`Config::set`] like a flag's text; `[namespaces]` goes to [`Namespaces::from_toml`], `[cluster]` to
//! [`ClusterConfig::from_toml`].

use std::path::Path;

use super::{ClusterConfig, Config, ConfigError, Namespaces};

impl Config {
    /// Applies every key of a TOML document; unknown keys are errors.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: origin.to_string(),
                message: e.to_string(),
            })?;
        for (key, value) in &table {
            if key == "namespaces" {
                let Some(t) = value.as_table() else {
                    return Err(ConfigError::Invalid {
                        key: key.clone(),
                        message: "must be tables like [namespaces.NAME]".into(),
                    });
                };
                self.namespaces = Namespaces::from_toml(t)?;
                continue;
            }
            if key == "cluster" {
                let Some(t) = value.as_table() else {
                    return Err(ConfigError::invalid(key, "must be a [cluster] table"));
                };
                self.cluster = Some(ClusterConfig::from_toml(t)?);
                continue;
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(ConfigError::Invalid {
                        key: key.clone(),
                        message: format!(
                            "expected a string, number or boolean, found {}",
                            other.type_str()
                        ),
                    })
                }
            };
            self.set(key, &text)?;
        }
        Ok(())
    }

    /// Reads and applies a TOML configuration file.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.apply_toml(&text, &path.display().to_string())?;
        self.config_file = Some(path.to_path_buf());
        Ok(())
    }
}
