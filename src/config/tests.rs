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
