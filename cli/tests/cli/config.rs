//! Loading the configuration: defaults for a newcomer, and a bad file refused
//! with `configuration_error` naming the file, the line and the field.

use mcp_engine::{Code, Config};

fn refused(text: &str) -> String {
    let error = Config::from_toml(text, "engine.toml").unwrap_err();
    assert_eq!(error.code(), Code::ConfigurationError);
    error.message().to_owned()
}

#[test]
fn defaults_serve_a_newcomer() {
    let config = Config::default();
    assert_eq!(config.version, "1.0");
    assert_eq!(config.max_message_size, 1024 * 1024);
    assert_eq!(config.timeout_ms, 200);
    assert_eq!(config.replay_window_secs, 300);
    assert_eq!(Config::from_toml("", "engine.toml").unwrap(), config);
    assert_eq!(
        Config::from_toml("# nothing\n\n", "engine.toml").unwrap(),
        config
    );
}

#[test]
fn a_file_sets_every_field() {
    let config = Config::from_toml(
        "version = \"1.0\"\nmax_message_size = 65536\ntimeout_ms = 1500\nreplay_window_secs = 60\n",
        "engine.toml",
    )
    .unwrap();
    let mut expected = Config::default();
    expected.version = "1.0".into();
    expected.max_message_size = 65536;
    expected.timeout_ms = 1500;
    expected.replay_window_secs = 60;
    assert_eq!(config, expected);
}

#[test]
fn out_of_range_values_name_the_field_and_line() {
    let cases = [
        (
            "\n\nmax_message_size = 100\n",
            "engine.toml:3: `max_message_size`: must be between 512",
        ),
        (
            "max_message_size = 4294967295\n",
            "engine.toml:1: `max_message_size`",
        ),
        (
            "timeout_ms = 0\n",
            "engine.toml:1: `timeout_ms`: must be between 1 and 3600000",
        ),
        (
            "\nreplay_window_secs = 0\n",
            "engine.toml:2: `replay_window_secs`",
        ),
        (
            "replay_window_secs = 86401\n",
            "engine.toml:1: `replay_window_secs`",
        ),
        ("version = \"2.0\"\n", "engine.toml:1: `version`"),
        ("version = \"one\"\n", "engine.toml:1: `version`"),
    ];
    for (text, expected) in cases {
        let message = refused(text);
        assert!(message.starts_with(expected), "{text:?}: {message}");
    }
}

#[test]
fn wrong_types_name_the_field_and_line() {
    let message = refused("version = \"1.0\"\n\ntimeout_ms = \"fast\"\n");
    assert!(
        message.starts_with("engine.toml:3: `timeout_ms`: invalid type"),
        "{message}"
    );
    let message = refused("max_message_size = -1\n");
    assert!(
        message.starts_with("engine.toml:1: `max_message_size`: invalid value"),
        "{message}"
    );
    let message = refused("version = 1\n");
    assert!(message.starts_with("engine.toml:1: `version`"), "{message}");
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let message = refused("timeout_ms = 100\nmax_mesage_size = 2048\n");
    assert!(
        message.starts_with("engine.toml:2: `max_mesage_size`: unknown field"),
        "{message}"
    );
    let message = refused("[tls]\ncert = \"x\"\n");
    assert!(
        message.starts_with("engine.toml:1: `tls`: unknown field"),
        "{message}"
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let message = refused("timeout_ms = 100\nversion = 1.0 oops\n");
    assert!(message.starts_with("engine.toml:2: "), "{message}");
    let message = refused("timeout_ms = 1\ntimeout_ms = 2\n");
    assert!(message.starts_with("engine.toml:2: "), "{message}");
}

#[test]
fn an_unreadable_file_is_a_configuration_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let error = Config::load(&path).unwrap_err();
    assert_eq!(error.code(), Code::ConfigurationError);
    assert!(error.message().contains("absent.toml"), "{error}");

    let path = dir.path().join("engine.toml");
    std::fs::write(&path, "timeout_ms = 250\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().timeout_ms, 250);
    std::fs::write(&path, "timeout_ms = 0\n").unwrap();
    let error = Config::load(&path).unwrap_err();
    assert!(
        error
            .message()
            .starts_with(&format!("{}:1: `timeout_ms`", path.display())),
        "{error}"
    );
}

#[test]
fn security_and_authorization_sections_are_read_whole() {
    let text = r#"
[security]
min_security_level = "High"
token_leeway_secs = 2
issuer = "mcp"
audience = "engine"
key_grace_secs = 60
revoked_jti = ["t-1"]

[[security.keys]]
id = "jwt-1"
use = "jwt"
algorithm = "EdDSA"
file = "keys/jwt.pem"
active = true

[[security.keys]]
id = "sig-1"
use = "signing"
file = "/abs/sig.key"

[authorization]
deny_ips = ["192.0.2.0/24", "2001:db8::1"]

[authorization.roles.reader]
allow = ["demo:echo", "sys:*"]
deny = ["sys:metrics"]
ips = ["10.0.0.0/8"]
"#;
    let config =
        Config::from_toml_in(text, "engine.toml", std::path::Path::new("/etc/mcp")).unwrap();
    let security = &config.security;
    assert_eq!(security.min_security_level, mcp_engine::SecurityLevel::High);
    assert_eq!(security.issuer.as_deref(), Some("mcp"));
    assert_eq!(security.revoked_jti, ["t-1"]);
    assert_eq!(security.keys.len(), 2);
    assert_eq!(
        security.keys[0].file,
        std::path::Path::new("/etc/mcp/keys/jwt.pem")
    );
    assert_eq!(security.keys[1].file, std::path::Path::new("/abs/sig.key"));
    assert!(security.keys[0].active && !security.keys[1].active);
    let reader = &config.authorization.roles["reader"];
    assert_eq!(reader.allow.len(), 2);
    assert_eq!(config.authorization.deny_ips.len(), 2);
}

#[test]
fn security_mistakes_name_the_field_and_line() {
    let key = |body: &str| format!("[[security.keys]]\n{body}\n");
    let cases = [
        (
            "[security]\nmin_security_level = \"Medium\"\n".to_owned(),
            "engine.toml:2: `security.min_security_level`",
        ),
        (
            "[security]\ntoken_leeway_secs = 9999\n".to_owned(),
            "engine.toml:2: `security.token_leeway_secs`",
        ),
        (
            key("id = \"a:b\"\nuse = \"signing\"\nfile = \"k\""),
            "engine.toml:2: `security.keys.id`",
        ),
        (
            key("id = \"a\"\nuse = \"magic\"\nfile = \"k\""),
            "engine.toml:3: `security.keys.use`",
        ),
        (
            key("id = \"a\"\nuse = \"jwt\"\nalgorithm = \"RS256\"\nfile = \"k\""),
            "engine.toml:4: `security.keys.algorithm`",
        ),
        (
            key("id = \"a\"\nuse = \"jwt\"\nfile = \"k\""),
            "`security.keys.algorithm`: a jwt key needs one",
        ),
        (
            key("id = \"a\"\nuse = \"signing\"\nalgorithm = \"HS256\"\nfile = \"k\""),
            "only jwt keys take one",
        ),
        (
            format!(
                "{}{}",
                key("id = \"a\"\nuse = \"signing\"\nfile = \"k\""),
                key("id = \"a\"\nuse = \"encryption\"\nfile = \"k\"")
            ),
            "key id `a` is used twice",
        ),
        (
            format!(
                "{}{}",
                key("id = \"a\"\nuse = \"signing\"\nfile = \"k\"\nactive = true"),
                key("id = \"b\"\nuse = \"signing\"\nfile = \"k\"\nactive = true")
            ),
            "two active signing keys",
        ),
        (
            key("id = \"a\"\nuse = \"signing\"\nfile = \"k\"\ncolour = 1"),
            "unknown field `colour`",
        ),
        (
            "[authorization]\ndeny_ips = [\"10.0.0.0/33\"]\n".to_owned(),
            "engine.toml:2: `authorization.deny_ips`",
        ),
        (
            "[authorization.roles.r]\nallow = [\"demo\"]\n".to_owned(),
            "engine.toml:2: `authorization.roles.r.allow`: a rule is",
        ),
        (
            "[authorization.roles.r]\ndeny = [\"de mo:x\"]\n".to_owned(),
            "`authorization.roles.r.deny`",
        ),
    ];
    for (text, expected) in cases {
        let message = refused(&text);
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn the_engine_section_is_read_whole() {
    let config = Config::from_toml(
        "[engine]\ntopology = \"staged\"\nworkers = 3\nqueue_capacity = 512\noverflow = \"block\"\npin_threads = false\nrun_on_submitter = false\nmax_deferred = 64\nstack_kib = 512\ndrain_ms = 250\nmax_error_history = 16\nmessage_history = 32\nidle_spins = 0\nidle_yields = 100\n",
        "engine.toml",
    )
    .unwrap();
    let engine = &config.engine;
    assert_eq!(engine.topology, mcp_engine::config::Topology::Staged);
    assert_eq!(
        (engine.workers, engine.queue_capacity, engine.max_deferred),
        (3, 512, 64)
    );
    assert_eq!(engine.overflow, mcp_engine::config::Overflow::Block);
    assert!(!engine.pin_threads && !engine.run_on_submitter);
    assert_eq!((engine.stack_kib, engine.drain_ms), (512, 250));
    assert_eq!((engine.max_error_history, engine.message_history), (16, 32));
    assert_eq!((engine.idle_spins, engine.idle_yields), (0, 100));
    let message = refused("[engine]\nidle_yields = 2000000\n");
    assert!(
        message.contains("engine.idle_yields") && message.starts_with("engine.toml:2:"),
        "{message}"
    );
}
