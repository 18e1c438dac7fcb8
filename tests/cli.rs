//! The `framecast` binary as a user runs it: help, config errors, and a real start/stop.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn framecast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framecast"))
}

/// Runs `cmd`, checks that the server refused to start, and returns what it wrote to stderr.
fn refused_start(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "the server started");
    String::from_utf8(out.stderr).unwrap()
}

/// Writes a configuration file `name` holding `toml` into this test run's temporary folder.
fn config_file(name: &str, toml: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("framecast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, toml).unwrap();
    file
}

/// Starts the server on an ephemeral loopback port with `extra` flags, stderr piped.
fn spawn_server(extra: &[&str]) -> std::process::Child {
    framecast()
        .args(["--listen", "127.0.0.1:0", "--shards", "1"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts the server with info logs and waits until it announces it is listening; returns it
/// with the rest of its log lines.
fn spawn_listening_server() -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = spawn_server(&["--log-level", "info"]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .any(|l| l.contains("framecast listening"));
    assert!(listening, "server announced it is listening");
    (child, lines)
}

#[test]
fn help_lists_every_configuration_key() {
    let out = framecast().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for key in framecast::config::KEYS {
        let flag = format!("--{}", key.name.replace('_', "-"));
        assert!(help.contains(&flag), "--help lacks {flag}");
        let env = format!("FRAMECAST_{}", key.name.to_uppercase());
        assert!(help.contains(&env), "--help lacks {env}");
    }
}

#[test]
fn invalid_flag_value_stops_the_start_naming_the_key() {
    let err = refused_start(framecast().args(["--tick-hz", "fast"]));
    assert!(err.contains("tick_hz"), "{err}");
}

#[test]
fn invalid_environment_value_names_the_key() {
    let err = refused_start(framecast().env("FRAMECAST_MAX_QUEUED_BYTES", "lots"));
    assert!(err.contains("max_queued_bytes"), "{err}");
}

#[test]
fn unknown_key_in_config_file_stops_the_start() {
    let file = config_file("bad.toml", "tick_hz = 30\nshardz = 2\n");
    let err = refused_start(framecast().arg("--config").arg(&file));
    assert!(err.contains("shardz"), "{err}");
}

#[test]
fn sigterm_stops_the_server_with_exit_code_0() {
    let (mut child, _log) = spawn_listening_server();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn non_loopback_listen_without_api_key_is_refused() {
    let err = refused_start(framecast().args(["--listen", "0.0.0.0:0"]));
    assert!(
        err.contains("api_key") && err.contains("--insecure-api"),
        "{err}"
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let mut child = spawn_server(&["--log-format", "json"]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert!(v["fields"]["message"].is_string(), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_server_process_keeps_its_heap_out_of_transparent_huge_pages() {
    let (mut child, _log) = spawn_listening_server();
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("/proc/PID/status has THP_enabled (Linux 5.0+)");
    assert_eq!(thp.trim(), "0", "THP_enabled in /proc/PID/status");
}

/// The `tick_hz` the server announces when started with `file` as its configuration, the
/// environment `env` and the extra flags `flags`.
fn announced_tick_hz(file: &std::path::Path, env: &[(&str, &str)], flags: &[&str]) -> u64 {
    let mut child = framecast()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--pin-cores",
            "false",
        ])
        .args(["--log-level", "info", "--log-format", "json", "--config"])
        .arg(file)
        .args(flags)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let announced = lines
        .take(20)
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v["fields"]["message"] == "framecast listening");
    child.kill().unwrap();
    child.wait().unwrap();
    let line = announced.expect("server announced it is listening");
    line["fields"]["tick_hz"].as_u64().unwrap()
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file() {
    let file = config_file("order.toml", "tick_hz = 10\n");
    let env = [("FRAMECAST_TICK_HZ", "20")];
    assert_eq!(announced_tick_hz(&file, &[], &[]), 10);
    assert_eq!(announced_tick_hz(&file, &env, &[]), 20);
    assert_eq!(announced_tick_hz(&file, &env, &["--tick-hz", "30"]), 30);
}

#[test]
fn an_invalid_value_in_the_file_stops_the_start_naming_the_key() {
    let file = config_file("bad-value.toml", "max_channels = 2000000\n");
    let err = refused_start(framecast().arg("--config").arg(&file));
    assert!(err.contains("`max_channels`"), "{err}");
}

#[test]
fn insecure_api_alone_is_a_switch() {
    let err = refused_start(framecast().args([
        "--listen",
        "0.0.0.0:0",
        "--insecure-api",
        "--ping-interval",
        "0",
    ]));
    // Past the api_key rule (the switch counted as true), stopped by the next rule checked.
    assert!(
        err.contains("`ping_interval`") && !err.contains("api_key"),
        "{err}"
    );
}
