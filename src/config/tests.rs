use super::*;

#[test]
fn defaults_serve_on_loopback_8080_at_60_hz() {
    let c = Config::default();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.tick_hz, 60);
    assert_eq!(c.max_message_bytes, 65536);
    assert_eq!(c.max_queued_bytes, 4 * 1024 * 1024);
}

#[test]
fn invalid_value_names_the_key() {
    let err = Config::default().set("tick_hz", "fast").unwrap_err();
    assert!(err.to_string().contains("`tick_hz`"), "{err}");
}

#[test]
fn max_channels_above_the_registry_cap_is_refused_naming_the_key() {
    let mut c = Config::default();
    c.set("max_channels", "1000000").unwrap();
    assert_eq!(c.max_channels, crate::limits::MAX_CHANNELS);
    let err = c.set("max_channels", "1000001").unwrap_err();
    assert!(err.to_string().contains("`max_channels`"), "{err}");
    assert_eq!(c.max_channels, crate::limits::MAX_CHANNELS);
    c.clone().check().unwrap();
    c.max_channels = crate::limits::MAX_CHANNELS + 1; // as an embedder may build it
    let err = c.check().unwrap_err();
    assert!(err.to_string().contains("max_channels"), "{err}");
}

#[test]
fn toml_unknown_key_is_an_error_naming_it() {
    let err = Config::default()
        .apply_toml("tick_hz = 30\nbogus = 1\n", "test")
        .unwrap_err();
    assert!(err.to_string().contains("`bogus`"), "{err}");
}

#[test]
fn toml_values_of_every_type_apply() {
    let mut c = Config::default();
    c.apply_toml(
        "listen = \"0.0.0.0:9000\"\nshards = 3\ntick_hz = 0\nmax_queued_bytes = \"8MiB\"\nping_interval = \"5s\"\necho_path = \"/echo\"\npin_cores = false\n",
        "test",
    )
    .unwrap();
    assert_eq!(c.shards, 3);
    assert_eq!(c.tick_hz, 0);
    assert_eq!(c.max_queued_bytes, 8 * 1024 * 1024);
    assert_eq!(c.ping_interval, Duration::from_secs(5));
    assert_eq!(c.echo_path.as_deref(), Some("/echo"));
    assert!(!c.pin_cores);
    assert!(c.tick_period().is_none());
}

#[test]
fn toml_wrong_type_names_the_key() {
    let err = Config::default()
        .apply_toml("shards = [1]\n", "test")
        .unwrap_err();
    assert!(err.to_string().contains("`shards`"), "{err}");
}

#[test]
fn byte_sizes_accept_suffixes_and_reject_garbage() {
    assert_eq!(values::parse_bytes("64KiB", 0, u64::MAX).unwrap(), 65536);
    assert_eq!(values::parse_bytes("4 MiB", 0, u64::MAX).unwrap(), 4 << 20);
    assert!(values::parse_bytes("4 parsecs", 0, u64::MAX).is_err());
}

#[test]
fn non_loopback_without_api_key_is_refused_unless_insecure() {
    let mut c = Config::default();
    c.set("listen", "0.0.0.0:8080").unwrap();
    let err = c.clone().check().unwrap_err().to_string();
    assert!(err.contains("api_key"), "{err}");
    c.set("insecure_api", "true").unwrap();
    c.clone().check().unwrap();
    c.set("insecure_api", "false").unwrap();
    c.set("api_key", "0123456789abcdef").unwrap();
    c.check().unwrap();
}

#[test]
fn default_channels_accept_a_toml_list_or_commas_and_check_names() {
    let mut c = Config::default();
    c.apply_toml(
        "default_channels = [\"system.status\", \"heartbeat\"]\n",
        "test",
    )
    .unwrap();
    assert_eq!(c.default_channels, vec!["system.status", "heartbeat"]);
    c.set("default_channels", "a, b").unwrap();
    assert_eq!(c.default_channels, vec!["a", "b"]);
    let err = c
        .set("default_channels", "ok,not ok")
        .unwrap_err()
        .to_string();
    assert!(err.contains("default_channels"), "{err}");
}

#[test]
fn a_namespace_nobody_could_join_is_refused_naming_it() {
    for access in ["token", "authenticated"] {
        let mut c = Config::default();
        c.apply_toml(
            &format!("[namespaces.session]\nsubscribe = \"{access}\"\n"),
            "test",
        )
        .unwrap();
        let err = c.clone().check().unwrap_err();
        assert!(
            err.to_string().contains("`namespaces.session.subscribe`"),
            "{err}"
        );
        c.jwt_secret = Some("a-secret-of-enough-length".into());
        c.check().unwrap();
    }
}

#[test]
fn refusing_anonymous_clients_without_a_key_is_refused() {
    let c = Config {
        allow_anonymous: Some(false),
        ..Config::default()
    };
    let err = c.check().unwrap_err();
    assert!(err.to_string().contains("`allow_anonymous`"), "{err}");
}

#[test]
fn every_documented_default_is_the_default() {
    let defaults = format!("{:?}", Config::default());
    for key in KEYS {
        if let KeyDefault::Text(text) = key.default {
            let mut c = Config::default();
            c.set(key.name, text).unwrap();
            assert_eq!(format!("{c:?}"), defaults, "`{}` = {text:?}", key.name);
        }
    }
}

/// Keys whose every text is valid (a free text, a path, origins as browsers send them).
const ACCEPTS_ANY_TEXT: &[&str] = &[
    "welcome",
    "jwt_public_key_file",
    "tls_cert_file",
    "tls_key_file",
    "allowed_origins",
];

/// A value each validating key refuses.
const INVALID: &[(&str, &str)] = &[
    ("listen", "nowhere"),
    ("shards", "0"),
    ("io", "kqueue"),
    ("tick_hz", "10001"),
    ("max_message_bytes", "100"),
    ("max_queued_bytes", "1"),
    ("compression", "gzip"),
    ("tls_kernel", "sometimes"),
    ("compression_level", "10"),
    ("max_connections", "0"),
    ("ping_interval", "soon"),
    ("pong_timeout", "-1s"),
    ("handshake_timeout", "ten"),
    ("drain_timeout", "1 fortnight"),
    ("echo_path", "echo"),
    ("pin_cores", "maybe"),
    ("api_key", "short"),
    ("insecure_api", "2"),
    ("max_http_body_bytes", "1"),
    ("status_interval", "often"),
    ("heartbeat_interval", "often"),
    ("default_channels", "ok,not ok"),
    ("jwt_secret", "short"),
    ("allow_anonymous", "perhaps"),
    ("auth_timeout", "5 parsecs"),
    ("cors_origins", "https://example.com/path"),
    ("max_subscriptions", "0"),
    ("max_channels", "1000001"),
];

#[test]
fn every_invalid_value_is_refused_naming_its_key_and_changes_nothing() {
    let defaults = format!("{:?}", Config::default());
    for (key, value) in INVALID {
        let mut c = Config::default();
        let err = c.set(key, value).unwrap_err();
        assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
        assert_eq!(format!("{c:?}"), defaults, "`{key}` = {value:?}");
    }
    for key in KEYS {
        let covered = INVALID.iter().any(|(k, _)| *k == key.name);
        assert!(
            covered || ACCEPTS_ANY_TEXT.contains(&key.name),
            "add an invalid value of `{}` to INVALID",
            key.name
        );
    }
}

#[test]
fn an_unknown_key_is_refused_by_set() {
    let err = Config::default().set("shardz", "2").unwrap_err();
    assert!(
        matches!(err, ConfigError::UnknownKey(ref k) if k == "shardz"),
        "{err}"
    );
}

#[test]
fn key_names_flags_and_variables_are_unique_and_derived_from_the_name() {
    let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), KEYS.len());
    let tick = KEYS.iter().find(|k| k.name == "tick_hz").unwrap();
    assert_eq!(tick.long(), "tick-hz");
    assert_eq!(tick.env(), "FRAMECAST_TICK_HZ");
    assert_eq!(tick.default_markdown(), "`60`");
    assert!(tick.help().ends_with("[default: 60]"), "{}", tick.help());
}

#[test]
fn check_returns_a_valid_config_that_reads_like_the_config() {
    let valid = ValidConfig::try_from(Config::default()).unwrap();
    assert_eq!(valid.tick_hz, 60);
    assert_eq!(valid.into_inner().listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn a_queue_cap_below_one_message_is_refused_naming_it() {
    let mut c = Config::default();
    c.set("max_queued_bytes", "32KiB").unwrap();
    let err = c.check().unwrap_err();
    assert!(err.to_string().contains("`max_queued_bytes`"), "{err}");
}

#[test]
fn a_zero_ping_interval_is_refused_naming_it() {
    let mut c = Config::default();
    c.set("ping_interval", "0").unwrap();
    let err = c.check().unwrap_err();
    assert!(err.to_string().contains("`ping_interval`"), "{err}");
}

#[test]
fn flags_are_derived_from_the_keys_and_reach_set() {
    use clap::{Args, FromArgMatches};
    let cmd = KeyFlags::augment_args(clap::Command::new("framecast"));
    for key in KEYS {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == key.name)
            .unwrap();
        assert_eq!(arg.get_long(), Some(key.long().as_str()));
        assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(&key.env())));
    }
    let matches = cmd
        .clone()
        .try_get_matches_from([
            "framecast",
            "--tick-hz",
            "30",
            "--insecure-api",
            "--default-channels",
            "a,b",
        ])
        .unwrap();
    let flags = KeyFlags::from_arg_matches(&matches).unwrap();
    let mut c = Config::default();
    flags.apply(&mut c).unwrap();
    assert_eq!(c.tick_hz, 30);
    assert!(c.insecure_api, "--insecure-api alone means true");
    assert_eq!(c.default_channels, ["a", "b"]);
    // Only `insecure_api` is a switch, as before: other booleans take a value.
    let bare = cmd.try_get_matches_from(["framecast", "--pin-cores"]);
    assert!(bare.is_err(), "--pin-cores needs true or false");
}

#[test]
fn a_flag_value_that_is_invalid_names_the_key() {
    use clap::{Args, FromArgMatches};
    let cmd = KeyFlags::augment_args(clap::Command::new("framecast"));
    let matches = cmd
        .try_get_matches_from(["framecast", "--max-message-bytes", "lots"])
        .unwrap();
    let err = KeyFlags::from_arg_matches(&matches)
        .unwrap()
        .apply(&mut Config::default())
        .unwrap_err();
    assert!(err.to_string().contains("`max_message_bytes`"), "{err}");
}
