//! The real `mcp-engine serve` binary over TLS: every level, every error a
//! remote peer can cause, framing faults, refused TLS versions, many
//! requests and connections, a peer that never reads, SIGHUP key rotation
//! and SIGTERM draining.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::serve::{Served, WAIT, command, outcome, reply_to, serve_config, serve_dev};
use mcp_engine::client::{Client, Connector, Envelopes, client_config};
use mcp_engine::codec::Codec;
use mcp_engine::message::unix_nanos_now;
use mcp_engine::security::{Key, Keyring, TokenClaims, b64u, issue_token};
use mcp_engine::{MessageType, RawJson, SecurityLevel};

/// A server whose commands may take 10 s: for the tests that load a debug
/// build hard enough that 200 ms could pass in a queue.
fn serve_patient() -> Served {
    serve_patient_with("")
}

/// [`serve_patient`] with `server` lines added (`[server]` is the dev
/// config's last section).
fn serve_patient_with(server: &str) -> Served {
    serve_config(|toml| {
        assert!(toml.contains("timeout_ms = 200"));
        *toml = toml.replace("timeout_ms = 200", "timeout_ms = 10000");
        toml.push_str(server);
    })
}

fn code_of(served: &Served, client: &Client, request: &mcp_engine::client::Outgoing) -> String {
    let reply = reply_to(client, request);
    outcome(&mut served.envelopes("admin"), &reply)
}

#[test]
fn every_level_and_codec_round_trips_over_tls() {
    let served = serve_dev();
    let client = served.connect();
    let mut envelopes = served.envelopes("admin");
    for codec in [Codec::Json, Codec::Binary] {
        for level in [
            SecurityLevel::Standard,
            SecurityLevel::High,
            SecurityLevel::Critical,
        ] {
            let args = RawJson::parse(r#"{"hi":[1,"two"]}"#).unwrap();
            let request = envelopes
                .command(codec, level, "demo.echo", Some(&args))
                .unwrap();
            let reply = client.call(&request, WAIT).unwrap();
            assert_eq!(reply.codec, codec, "the reply is in the request's codec");
            assert_eq!(reply.correlation_id.as_deref(), Some(request.id.as_str()));
            let opened = envelopes.open(reply.codec, &reply.body).unwrap();
            assert_eq!(opened.message.kind, MessageType::Response, "{level:?}");
            assert_eq!(opened.message.security.security_level, level);
            assert_eq!(
                opened.message.payload.as_str(),
                r#"{"result":{"hi":[1,"two"]}}"#
            );
            let raw = String::from_utf8_lossy(&reply.body).into_owned();
            if codec == Codec::Json {
                assert_eq!(
                    raw.contains("encryption_info"),
                    level == SecurityLevel::Critical
                );
                assert_eq!(raw.contains("dev-sign-1:"), level >= SecurityLevel::High);
            }
        }
    }
    // The built-ins and an event with ack.
    let ping = command(&mut envelopes, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &client, &ping), "Response");
    let notice = envelopes
        .event(
            Codec::Json,
            SecurityLevel::Standard,
            "demo.notice",
            None,
            true,
        )
        .unwrap();
    let reply = client.call(&notice, WAIT).unwrap();
    let opened = envelopes.open(reply.codec, &reply.body).unwrap();
    assert_eq!(
        opened.message.payload.as_str(),
        r#"{"result":{"delivered":1}}"#
    );
}

/// An expired token signed with the dev jwt key.
fn expired_token(served: &Served) -> String {
    let jwt = served.credentials.jwt.as_ref().unwrap();
    let secret = b64u::decode(&jwt.key.key).unwrap();
    let keyring = Keyring::new()
        .with(&jwt.key.kid, Key::hs256(&secret).unwrap(), true)
        .unwrap();
    let claims = TokenClaims {
        subject: "admin",
        roles: &["admin"],
        issuer: None,
        audience: None,
        ttl_secs: 60,
    };
    issue_token(&keyring, &claims, unix_nanos_now() - 86_400 * 1_000_000_000).unwrap()
}

/// Envelopes that seal with `token` and keys that are not the server's
/// where `wrong` says so.
fn envelopes_with(
    served: &Served,
    token: &str,
    wrong_signing: bool,
    wrong_encryption: bool,
) -> Envelopes {
    let mut credentials = served.credentials.clone();
    let random = || b64u::encode(&mcp_engine::dev_setup::random_key().unwrap()[..]);
    if wrong_signing {
        credentials.signing.as_mut().unwrap().key = random().into();
    }
    if wrong_encryption {
        credentials.encryption.as_mut().unwrap().key = random().into();
    }
    credentials.tokens.insert("x".into(), token.to_owned());
    Envelopes::from_credentials(&credentials, "x").unwrap()
}

fn raw_json(id: &str, version: &str, payload: &str, token: &str) -> mcp_engine::client::Outgoing {
    let timestamp = mcp_engine::message::Timestamp::now();
    let body = format!(
        r#"{{"version":"{version}","id":"{id}","type":"Command","payload":{payload},"security":{{"security_level":"Standard","auth_token":"{token}"}},"timestamp":"{timestamp}"}}"#
    );
    mcp_engine::client::Outgoing {
        id: id.to_owned(),
        codec: Codec::Json,
        body: body.into_bytes(),
    }
}

#[test]
fn each_error_a_remote_peer_can_cause_comes_back_with_its_code() {
    let served = serve_dev();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let mut reader = served.envelopes("reader");
    let token = served.credentials.token("admin").unwrap().to_owned();
    let cases: Vec<(&str, mcp_engine::client::Outgoing)> = vec![
        (
            "invalid_format",
            mcp_engine::client::Outgoing {
                id: "bad-1".into(),
                codec: Codec::Json,
                body: b"{not json".to_vec(),
            },
        ),
        (
            "validation_failed",
            raw_json("v-1", "1.0", r#"{"command":7}"#, &token),
        ),
        (
            "unsupported_version",
            raw_json("v-2", "2.0", r#"{"command":"demo.echo"}"#, &token),
        ),
        (
            "access_denied",
            command(&mut admin, SecurityLevel::Low, "demo.echo", None),
        ),
        (
            "access_denied",
            command(
                &mut reader,
                SecurityLevel::Standard,
                "demo.sleep",
                Some(r#"{"ms":1}"#),
            ),
        ),
        (
            "authentication_failed",
            command(
                &mut envelopes_with(&served, "not.a-token.at-all", false, false),
                SecurityLevel::Standard,
                "demo.echo",
                None,
            ),
        ),
        (
            "token_expired",
            command(
                &mut envelopes_with(&served, &expired_token(&served), false, false),
                SecurityLevel::Standard,
                "demo.echo",
                None,
            ),
        ),
        (
            "signature_invalid",
            command(
                &mut envelopes_with(&served, &token, true, false),
                SecurityLevel::High,
                "demo.echo",
                None,
            ),
        ),
        (
            "encryption_failed",
            command(
                &mut envelopes_with(&served, &token, false, true),
                SecurityLevel::Critical,
                "demo.echo",
                None,
            ),
        ),
        (
            "handler_not_found",
            command(&mut admin, SecurityLevel::Standard, "no.such", None),
        ),
        (
            "timeout",
            command(
                &mut admin,
                SecurityLevel::Standard,
                "demo.sleep",
                Some(r#"{"ms":1000}"#),
            ),
        ),
        (
            "internal_error",
            command(&mut admin, SecurityLevel::Standard, "demo.panic", None),
        ),
    ];
    for (code, request) in &cases {
        assert_eq!(&code_of(&served, &client, request), code, "{}", request.id);
    }

    // The same message twice.
    let once = command(&mut admin, SecurityLevel::Standard, "demo.echo", None);
    assert_eq!(code_of(&served, &client, &once), "Response");
    assert_eq!(code_of(&served, &client, &once), "replay_detected");

    // The connection survived every one of them.
    let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &client, &ping), "Response");
    assert!(!client.is_closed());
}

#[test]
fn a_full_deferral_table_answers_resource_exhausted() {
    let served = serve_config(|toml| toml.push_str("\n[engine]\nmax_deferred = 2\n"));
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    // One connection goes to one worker: its third deferral finds no room.
    let requests: Vec<_> = (0..6)
        .map(|_| {
            command(
                &mut admin,
                SecurityLevel::Standard,
                "demo.sleep",
                Some(r#"{"ms":150}"#),
            )
        })
        .collect();
    let waiters: Vec<_> = requests
        .iter()
        .map(|r| client.request(r).unwrap())
        .collect();
    let mut codes: HashMap<String, usize> = HashMap::new();
    for waiter in waiters {
        let reply = waiter.wait(WAIT).unwrap();
        *codes.entry(outcome(&mut admin, &reply)).or_default() += 1;
    }
    assert_eq!(codes.get("Response"), Some(&2), "{codes:?}");
    assert_eq!(codes.get("resource_exhausted"), Some(&4), "{codes:?}");
}

#[test]
fn an_oversized_frame_gets_message_too_large_and_a_close() {
    let served = serve_dev();
    let client = served.connect();
    // 1 MiB is the dev limit; announce more.
    let mut frame = ((1024 * 1024 + 2) as u32).to_be_bytes().to_vec();
    frame.push(b'J');
    frame.extend_from_slice(&[b' '; 100]);
    client.send_raw(&frame).unwrap();
    let reply = client.next_unmatched(WAIT).expect("an Error");
    assert_eq!(reply.correlation_id, None);
    assert_eq!(
        outcome(&mut served.envelopes("admin"), &reply),
        "message_too_large"
    );
    let until = std::time::Instant::now() + WAIT;
    while !client.is_closed() {
        assert!(
            std::time::Instant::now() < until,
            "the server keeps the connection"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_malformed_body_or_codec_gets_invalid_format_and_the_connection_goes_on() {
    let served = serve_dev();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let mut frame = Vec::new();
    mcp_engine::frame::write_frame(&mut frame, Codec::Json, b"[1,2").unwrap();
    // An unknown codec byte.
    frame.extend_from_slice(&[0, 0, 0, 3, b'X', b'{', b'}']);
    client.send_raw(&frame).unwrap();
    for _ in 0..2 {
        let reply = client.next_unmatched(WAIT).expect("an Error");
        assert_eq!(outcome(&mut admin, &reply), "invalid_format");
    }
    let echo = command(&mut admin, SecurityLevel::Standard, "demo.echo", Some("1"));
    assert_eq!(code_of(&served, &client, &echo), "Response");
}

#[test]
fn a_tls12_only_client_another_alpn_and_a_plain_tcp_client_are_refused() {
    let served = serve_dev();
    let ca = served.credentials.ca_cert.clone().unwrap();
    let roots = mcp_engine::tls::load_roots(&ca).unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(mcp_engine::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let refused = Connector::tls(served.addr, Arc::new(tls12), "localhost")
        .unwrap()
        .connect();
    assert!(refused.is_err(), "TLS 1.2 was accepted");

    // TLS 1.3 offering only another protocol than mcp/1.
    let mut h2 = (*client_config(&ca, None).unwrap()).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let refused = Connector::tls(served.addr, Arc::new(h2), "localhost")
        .unwrap()
        .connect();
    assert!(refused.is_err(), "ALPN h2 was accepted");

    // Plain TCP: the server reads a frame as a TLS record and hangs up.
    let plain = Connector::plain(served.addr).connect().unwrap();
    let mut admin = served.envelopes("admin");
    let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    let waiter = plain.request(&ping).unwrap();
    assert!(waiter.wait(WAIT).is_err(), "plain TCP got an answer");
    assert!(plain.next_unmatched(Duration::from_millis(10)).is_none());

    // TLS 1.3 without ALPN is served.
    let mut bare = (*client_config(&ca, None).unwrap()).clone();
    bare.alpn_protocols.clear();
    let bare = Connector::tls(served.addr, Arc::new(bare), "localhost")
        .unwrap()
        .connect()
        .unwrap();
    let ping2 = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &bare, &ping2), "Response");

    // TLS 1.3 with mcp/1 works.
    let good = Connector::tls(served.addr, client_config(&ca, None).unwrap(), "localhost")
        .unwrap()
        .connect()
        .unwrap();
    assert_eq!(code_of(&served, &good, &ping), "Response");
}

#[test]
fn a_thousand_pipelined_requests_on_one_connection_get_one_reply_each() {
    let served = serve_patient();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let levels = [
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ];
    let requests: Vec<_> = (0..1000)
        .map(|n| {
            let args = format!("{n}");
            command(&mut admin, levels[n % 3], "demo.echo", Some(&args))
        })
        .collect();
    let waiters: Vec<_> = requests
        .iter()
        .map(|r| client.request(r).unwrap())
        .collect();
    for (n, waiter) in waiters.into_iter().enumerate() {
        let reply = waiter.wait(WAIT).unwrap();
        let opened = admin.open(reply.codec, &reply.body).unwrap();
        assert_eq!(
            opened.message.payload.as_str(),
            format!(r#"{{"result":{n}}}"#)
        );
    }
    // Nothing extra arrived.
    assert!(client.next_unmatched(Duration::from_millis(100)).is_none());
}

#[test]
fn a_thousand_concurrent_connections_are_served() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // All from 127.0.0.1, more than one address may open by default.
    let served = serve_patient_with("max_connections_per_ip = 1000\n");
    let clients: Vec<Client> = (0..1000).map(|_| served.connect()).collect();
    let mut admin = served.envelopes("admin");
    let requests: Vec<_> = clients
        .iter()
        .map(|_| command(&mut admin, SecurityLevel::Standard, "sys.ping", None))
        .collect();
    let waiters: Vec<_> = clients
        .iter()
        .zip(&requests)
        .map(|(client, request)| client.request(request).unwrap())
        .collect();
    for waiter in waiters {
        let reply = waiter.wait(WAIT).unwrap();
        assert_eq!(outcome(&mut admin, &reply), "Response");
    }
}

/// A blocking TLS stream to the server, outside the client library: for
/// peers that misbehave on purpose.
fn blocking_tls(
    served: &Served,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    tls_stream(served.credentials.ca_cert.as_ref().unwrap(), served.addr)
}

/// [`blocking_tls`] to `addr`, trusting `ca`.
fn tls_stream(
    ca: &std::path::Path,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let config = client_config(ca, None).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let tls = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(tls, tcp)
}

#[test]
fn a_client_that_never_reads_does_not_hold_up_the_others() {
    let served = serve_patient();
    let mut admin = served.envelopes("admin");
    // A TLS client that writes requests with big replies and never reads.
    let mut stream = blocking_tls(&served);
    let big = format!("\"{}\"", "x".repeat(16 * 1024));
    let mut frames = Vec::new();
    for _ in 0..2000 {
        let request = command(&mut admin, SecurityLevel::Standard, "demo.echo", Some(&big));
        mcp_engine::frame::write_frame(&mut frames, request.codec, &request.body).unwrap();
    }
    // Its writes block once the server stops reading it: leave that to a
    // thread of its own.
    let writer = std::thread::spawn(move || {
        let _ = stream.write_all(&frames);
        stream
    });

    let client = served.connect();
    for n in 0..200 {
        let args = format!("{n}");
        let echo = command(
            &mut admin,
            SecurityLevel::Standard,
            "demo.echo",
            Some(&args),
        );
        let reply = client.call(&echo, WAIT).unwrap();
        assert_eq!(outcome(&mut admin, &reply), "Response");
    }
    drop(writer);
}

/// Adds encryption key `dev-enc-2` to the served config, active, and
/// retires `dev-enc-1`.
fn rotate_encryption_key(served: &Served) -> String {
    let key = b64u::encode(&mcp_engine::dev_setup::random_key().unwrap()[..]);
    std::fs::write(served.dir.join("keys/encryption-2.key"), &key).unwrap();
    let path = served.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "file = \"keys/encryption.key\"\nactive = true",
        "file = \"keys/encryption.key\"\nactive = false",
    );
    let text = text.replace(
        "[authorization.roles.admin]",
        "[[security.keys]]\nid = \"dev-enc-2\"\nuse = \"encryption\"\nfile = \"keys/encryption-2.key\"\nactive = true\n\n[authorization.roles.admin]",
    );
    assert!(text.contains("active = false"));
    std::fs::write(&path, text).unwrap();
    key
}

#[test]
fn sighup_rotates_keys_mid_stream_and_loses_nothing() {
    let served = serve_patient();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    // Twelve windows of 50 encrypted requests, each window in flight at
    // once; the rotation lands while the seventh is.
    for window in 0..12 {
        let mut waiters = Vec::new();
        for k in 0..50 {
            let n = window * 50 + k;
            if n == 310 {
                rotate_encryption_key(&served);
                served.signal("HUP");
            }
            let args = format!("{n}");
            let request = command(
                &mut admin,
                SecurityLevel::Critical,
                "demo.echo",
                Some(&args),
            );
            waiters.push((n, client.request(&request).unwrap()));
        }
        for (n, waiter) in waiters {
            let reply = match waiter.wait(WAIT) {
                Ok(reply) => reply,
                Err(e) => panic!(
                    "request {n}: {e:?}; unmatched: {:?}",
                    client
                        .next_unmatched(Duration::ZERO)
                        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                ),
            };
            let opened = admin.open(reply.codec, &reply.body).unwrap();
            assert_eq!(
                opened.message.payload.as_str(),
                format!(r#"{{"result":{n}}}"#),
                "request {n}: {}",
                opened.to_json()
            );
        }
    }
    assert!(!client.is_closed(), "the reload dropped the connection");

    // The new key works on the same connection.
    let mut credentials = served.credentials.clone();
    let key = std::fs::read_to_string(served.dir.join("keys/encryption-2.key")).unwrap();
    let encryption = credentials.encryption.as_mut().unwrap();
    encryption.kid = "dev-enc-2".into();
    encryption.key = key.into();
    let mut rotated = Envelopes::from_credentials(&credentials, "admin").unwrap();
    let until = std::time::Instant::now() + WAIT;
    loop {
        let request = command(
            &mut rotated,
            SecurityLevel::Critical,
            "demo.echo",
            Some("1"),
        );
        let reply = client.call(&request, WAIT).unwrap();
        if outcome(&mut rotated, &reply) == "Response" {
            break;
        }
        // The reload may not have been applied yet.
        assert!(std::time::Instant::now() < until, "dev-enc-2 never worked");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_answers_every_request_in_flight_before_exit() {
    let mut served = serve_patient();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let requests: Vec<_> = (0..100)
        .map(|n| {
            let args = if n % 2 == 0 {
                r#"{"ms":100}"#
            } else {
                r#"{"ms":0}"#
            };
            command(
                &mut admin,
                SecurityLevel::Standard,
                "demo.sleep",
                Some(args),
            )
        })
        .collect();
    let waiters: Vec<_> = requests
        .iter()
        .map(|r| client.request(r).unwrap())
        .collect();
    // One connection's messages run in order on one worker: once the last
    // quick one is answered, the server has read them all, and the slow
    // ones are in flight.
    let last = waiters[99].wait(WAIT).unwrap();
    assert_eq!(outcome(&mut admin, &last), "Response");
    served.signal("TERM");
    let mut answered = 1;
    for (n, waiter) in waiters.iter().enumerate() {
        if n == 99 {
            continue;
        }
        let reply = waiter.wait(WAIT).unwrap();
        assert_eq!(outcome(&mut admin, &reply), "Response", "request {n}");
        answered += 1;
    }
    assert_eq!(answered, 100);
    let status = served.wait_exit();
    assert!(status.success(), "{status:?}");
}

/// A client CA and a client certificate it signed, written to `dir`:
/// `(ca, cert, key)` paths.
fn client_identity(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["client.example".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("client-ca.pem"),
        dir.join("client.pem"),
        dir.join("client-key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn mutual_tls_serves_clients_with_a_certificate_and_refuses_the_rest() {
    let scratch = tempfile::tempdir().unwrap();
    let (client_ca, cert, key) = client_identity(scratch.path());
    let served = serve_config(|toml| {
        *toml = toml.replace(
            "key = \"server-key.pem\"",
            &format!(
                "key = \"server-key.pem\"\nclient_ca = {:?}",
                client_ca.display().to_string()
            ),
        );
    });
    let ca = served.credentials.ca_cert.clone().unwrap();
    let mut admin = served.envelopes("admin");

    let with_cert = Connector::tls(
        served.addr,
        client_config(&ca, Some((&cert, &key))).unwrap(),
        "localhost",
    )
    .unwrap()
    .connect()
    .unwrap();
    let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &with_cert, &ping), "Response");

    // Without a certificate: the handshake fails, or (TLS 1.3 finishes the
    // client's side first) the server's alert ends the connection.
    if let Ok(without) = Connector::from_credentials(&served.credentials)
        .unwrap()
        .connect()
    {
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        let waiter = without.request(&ping);
        assert!(
            waiter.is_err() || waiter.unwrap().wait(WAIT).is_err(),
            "a client without a certificate was served"
        );
    }
}

#[test]
fn a_client_that_reads_late_gets_every_reply() {
    use std::io::Read;
    // Plain TCP, so that one thread can write while the reading waits.
    let served = serve_config(|toml| {
        *toml = toml.replace("timeout_ms = 200", "timeout_ms = 10000");
        let tls = "cert = \"server.pem\"\nkey = \"server-key.pem\"";
        assert!(toml.contains(tls));
        *toml = toml.replace(tls, "plain_tcp = true");
    });
    let mut admin = served.envelopes("admin");
    let stream = std::net::TcpStream::connect(served.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // 200 requests (under the in-flight limit) whose replies, 12 MiB, are
    // far more than its outbound buffer and the socket buffers hold: the
    // server stops reading while the connection holds its share, so the
    // writes wait (back-pressure, not a drop).
    let big = format!("\"{}\"", "y".repeat(64 * 1024));
    let mut frames = Vec::new();
    for _ in 0..200 {
        let request = command(&mut admin, SecurityLevel::Standard, "demo.echo", Some(&big));
        mcp_engine::frame::write_frame(&mut frames, request.codec, &request.body).unwrap();
    }
    let mut writing = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || writing.write_all(&frames));
    // Let the server fill everything up, then read it all.
    std::thread::sleep(Duration::from_millis(500));
    let mut decoder = mcp_engine::frame::FrameDecoder::new(1 << 20);
    let mut replies = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut reading = &stream;
    while replies < 200 {
        let n = reading.read(&mut buffer).expect("replies stopped coming");
        assert!(n > 0, "closed after {replies} replies");
        decoder.push(&buffer[..n]);
        while let Some(frame) = decoder.next_frame() {
            let frame = frame.unwrap();
            let opened = admin.open(frame.codec, frame.body).unwrap();
            assert!(!opened.is_error(), "{}", opened.to_json());
            replies += 1;
        }
    }
    writer.join().unwrap().unwrap();
}

#[test]
fn low_level_is_served_where_the_config_allows_it() {
    let served = serve_config(|toml| {
        *toml = toml.replace(
            "min_security_level = \"Standard\"",
            "min_security_level = \"Low\"",
        );
        // Low carries no token: the caller is role `anonymous`.
        *toml = toml.replace(
            "[server]",
            "[authorization.roles.anonymous]\nallow = [\"demo:echo\"]\n\n[server]",
        );
    });
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let echo = command(&mut admin, SecurityLevel::Low, "demo.echo", Some("[1]"));
    let reply = client.call(&echo, WAIT).unwrap();
    let opened = admin.open(reply.codec, &reply.body).unwrap();
    assert_eq!(opened.message.security.security_level, SecurityLevel::Low);
    assert_eq!(opened.message.payload.as_str(), r#"{"result":[1]}"#);
}

/// Waits until `client` is closed by the server.
fn closed_by_server(client: &Client) -> bool {
    let until = std::time::Instant::now() + WAIT;
    while !client.is_closed() {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn idle_and_handshake_timeouts_close_connections() {
    let served = serve_config(|toml| {
        // `[server]` is the file's last section.
        toml.push_str("idle_timeout_ms = 300\nhandshake_timeout_ms = 300\n");
    });
    let mut admin = served.envelopes("admin");

    // Idle: served, then closed once quiet for 300 ms.
    let idle = served.connect();
    let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &idle, &ping), "Response");
    assert!(closed_by_server(&idle), "idle connection stayed open");

    // Handshake: a TCP connection that never starts TLS is dropped.
    let mut silent = std::net::TcpStream::connect(served.addr).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut silent, &mut byte);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[test]
fn connections_past_max_connections_are_closed_at_once() {
    let served = serve_config(|toml| toml.push_str("max_connections = 2\n"));
    let mut admin = served.envelopes("admin");
    let first = served.connect();
    let second = served.connect();
    let third = Connector::from_credentials(&served.credentials)
        .unwrap()
        .connect();
    if let Ok(third) = third {
        assert!(closed_by_server(&third), "a third connection was kept");
    }
    for client in [&first, &second] {
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, client, &ping), "Response");
    }
}

fn send(args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-engine"))
        .arg("send")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn send_prints_the_opened_reply_and_exits_by_its_kind() {
    let served = serve_dev();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("credentials.json");
    std::fs::write(
        &file,
        serde_json::to_string(&served_credentials(&served)).unwrap(),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let (code, out) = send(&["--credentials", file, "demo.echo", r#"{"hi":1}"#]);
    assert_eq!(code, 0, "{out}");
    let reply: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["type"], "Response");
    assert_eq!(reply["payload"], serde_json::json!({"result": {"hi": 1}}));

    // Critical, binary: printed decrypted.
    let (code, out) = send(&[
        "--credentials",
        file,
        "--level",
        "Critical",
        "--binary",
        "demo.echo",
        "[7]",
    ]);
    assert_eq!(code, 0, "{out}");
    let reply: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["payload"], serde_json::json!({"result": [7]}));
    assert_eq!(reply["security"]["security_level"], "Critical");

    // An Error: exit 1, the Error printed.
    let (code, out) = send(&["--credentials", file, "demo.panic"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("internal_error"), "{out}");

    // Explicit key files instead of a credentials file.
    let keys = served.dir.join("keys");
    let signing = format!("dev-sign-1={}", keys.join("signing.key").display());
    let encryption = format!("dev-enc-1={}", keys.join("encryption.key").display());
    let ca = served.dir.join("ca.pem");
    let (code, out) = send(&[
        "--addr",
        &served.addr.to_string(),
        "--ca-cert",
        ca.to_str().unwrap(),
        "--token",
        served.credentials.token("admin").unwrap(),
        "--signing-key",
        &signing,
        "--encryption-key",
        &encryption,
        "--level",
        "Critical",
        "demo.echo",
        "\"x\"",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#""payload":{"result":"x"}"#), "{out}");

    // Nobody listening: exit 2.
    let (code, _) = send(&["--addr", "127.0.0.1:1", "--plain", "sys.ping"]);
    assert_eq!(code, 2);
}

/// The credentials of a served instance as JSON.
fn served_credentials(served: &Served) -> serde_json::Value {
    let mut value: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(served.dir.join("credentials.json")).unwrap(),
    )
    .unwrap();
    value["addr"] = serde_json::Value::String(served.addr.to_string());
    value
}

#[test]
fn a_flood_of_bad_frames_from_a_peer_that_never_reads_stays_bounded() {
    let served = serve_dev();
    let mut stream = blocking_tls(&served);
    // Warm the connection up, then measure.
    stream.write_all(&[0, 0, 0, 1, b'X']).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = served.rss_kib();
    // 400,000 frames with an unknown codec byte: each one is answered by
    // the server itself (about 300 bytes), outside any in-flight count.
    let flood: Vec<u8> = std::iter::repeat_n([0u8, 0, 0, 1, b'X'], 400_000)
        .flatten()
        .collect();
    let writer = std::thread::spawn(move || {
        let _ = stream.write_all(&flood);
        stream
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = served.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "server memory grew from {before} KiB to {after} KiB"
    );
    // Others are served meanwhile.
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
    assert_eq!(code_of(&served, &client, &ping), "Response");
    drop(writer);
}

/// A JSON body with the given top-level members, `{id}` standing for a fresh
/// valid id, `{now}` for the time and `{token}` for a valid token.
fn body_with(template: &str, id: &str, token: &str) -> Vec<u8> {
    template
        .replace("{id}", id)
        .replace("{token}", token)
        .replace("{now}", mcp_engine::message::Timestamp::now().as_str())
        .into_bytes()
}

#[test]
fn every_envelope_rule_refusal_names_the_message_it_refuses_in_both_codecs() {
    let served = serve_dev();
    let client = served.connect();
    let mut admin = served.envelopes("admin");
    let token = served.credentials.token("admin").unwrap().to_owned();
    let security = r#""security":{"security_level":"Standard","auth_token":"{token}"}"#;
    let good = format!(
        r#""id":"{{id}}","type":"Command","payload":{{"command":"sys.ping"}},{security},"timestamp":"{{now}}""#
    );
    let old =
        mcp_engine::message::Timestamp::from_unix_nanos(unix_nanos_now() - 400 * 1_000_000_000);
    let json_cases: Vec<(&str, String)> = vec![
        (
            "unsupported_version",
            format!(r#"{{"version":"2.0",{good}}}"#),
        ),
        (
            "validation_failed",
            format!(r#"{{"version":"1.x",{good}}}"#),
        ),
        ("validation_failed", format!(r#"{{"version":1,{good}}}"#)),
        ("validation_failed", format!(r#"{{{good},"extra":1}}"#)),
        (
            "validation_failed",
            format!(r#"{{{good},"type_":"Command"}}"#),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace("{now}", old.as_str())),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace("{now}", "yesterday")),
        ),
        (
            "validation_failed",
            format!(
                "{{{}}}",
                good.replace(r#""type":"Command""#, r#""type":"Query""#)
            ),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace(r#""type":"Command","#, "")),
        ),
        (
            "validation_failed",
            format!(
                "{{{}}}",
                good.replace(r#""payload":{"command":"sys.ping"},"#, "")
            ),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace(&format!(",{security}"), "")),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace("\"Standard\"", "\"Ultra\"")),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace("\"auth_token\"", "\"token\"")),
        ),
        (
            "validation_failed",
            format!("{{{}}}", good.replace(r#","timestamp":"{now}""#, "")),
        ),
        ("validation_failed", format!(r#"{{{good},"metadata":5}}"#)),
        (
            "validation_failed",
            format!(r#"{{{good},"metadata":{{"correlation_id":"not an id"}}}}"#),
        ),
        (
            "validation_failed",
            format!(r#"{{{good},"metadata":{{"ack":"yes"}}}}"#),
        ),
        // After decoding: the payload's shape, the level's minimum.
        (
            "validation_failed",
            format!(
                "{{{}}}",
                good.replace(r#"{"command":"sys.ping"}"#, r#"{"args":{}}"#)
            ),
        ),
        (
            "validation_failed",
            format!(
                "{{{}}}",
                good.replace(r#"{"command":"sys.ping"}"#, r#"{"command":3}"#)
            ),
        ),
        (
            "access_denied",
            format!("{{{}}}", good.replace("\"Standard\"", "\"Low\"")),
        ),
    ];
    for (n, (code, template)) in json_cases.iter().enumerate() {
        let id = format!("rule-json-{n}");
        let request = mcp_engine::client::Outgoing {
            id: id.clone(),
            codec: Codec::Json,
            body: body_with(template, &id, &token),
        };
        // `call` returns only a reply correlated with the request's id.
        let reply = client
            .call(&request, WAIT)
            .unwrap_or_else(|e| panic!("{template}: no correlated reply: {e}"));
        assert_eq!(
            reply.correlation_id.as_deref(),
            Some(id.as_str()),
            "{template}"
        );
        assert_eq!(outcome(&mut admin, &reply), *code, "{template}");
    }

    // The binary codec: the rules a typed envelope can still break.
    type Edit = Box<dyn Fn(&mut mcp_engine::Message)>;
    let binary_cases: Vec<(&str, Edit)> = vec![
        (
            "unsupported_version",
            Box::new(|m| m.version = Some("2.0".into())),
        ),
        (
            "validation_failed",
            Box::new(|m| m.version = Some("1.x".into())),
        ),
        (
            "validation_failed",
            Box::new(move |m| m.timestamp = old.clone()),
        ),
        (
            "validation_failed",
            Box::new(|m| {
                m.metadata = mcp_engine::Field::Present(
                    RawJson::parse(r#"{"correlation_id":"not an id"}"#).unwrap(),
                )
            }),
        ),
        (
            "validation_failed",
            Box::new(|m| m.metadata = mcp_engine::Field::Present(RawJson::parse("[]").unwrap())),
        ),
        (
            "validation_failed",
            Box::new(|m| m.payload = RawJson::parse(r#"{"args":{}}"#).unwrap()),
        ),
    ];
    for (n, (code, edit)) in binary_cases.iter().enumerate() {
        let id = format!("rule-binary-{n}");
        let mut message = mcp_engine::Message::new(
            id.as_str(),
            MessageType::Command,
            SecurityLevel::Standard,
            RawJson::parse(r#"{"command":"sys.ping"}"#).unwrap(),
        );
        message.security.auth_token = mcp_engine::Field::Present(token.clone());
        edit(&mut message);
        let request = mcp_engine::client::Outgoing {
            id: id.clone(),
            codec: Codec::Binary,
            body: mcp_engine::client::encode(&message, Codec::Binary).unwrap(),
        };
        let reply = client
            .call(&request, WAIT)
            .unwrap_or_else(|e| panic!("binary case {n}: no correlated reply: {e}"));
        assert_eq!(reply.codec, Codec::Binary, "binary case {n}");
        assert_eq!(reply.correlation_id.as_deref(), Some(id.as_str()));
        assert_eq!(outcome(&mut admin, &reply), *code, "binary case {n}");
    }

    // Where the id cannot be read, or is not a valid one, the Error says null.
    for body in [
        b"{not json".to_vec(),
        body_with(&format!("{{{good},\"id\":\"dup\"}}"), "first", &token),
        body_with(&format!("{{{good}}}"), "not an id", &token),
    ] {
        let request = mcp_engine::client::Outgoing {
            id: "unnamed".into(),
            codec: Codec::Json,
            body,
        };
        let reply = reply_to(&client, &request);
        assert_eq!(reply.correlation_id, None);
        let code = outcome(&mut admin, &reply);
        assert!(
            code == "invalid_format" || code == "validation_failed",
            "{code}"
        );
    }
    assert!(!client.is_closed());
}

/// A client of replay streams written from docs/protocol.md sections 5 to
/// 7a alone: envelopes built as JSON values (serialized with sorted keys,
/// which is RFC 8785 for these ASCII, integer-only values), signed with
/// HMAC-SHA256 and encrypted with AES-256-GCM straight on `ring`, none of
/// the engine's sealing code. Only the connection is the library's.
mod spec_client {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use ring::hmac;
    use serde_json::{Value, json};

    pub(super) struct SpecClient {
        token: String,
        signing: (String, hmac::Key),
        encryption: (String, LessSafeKey),
        next_nonce: u64,
    }

    fn b64u(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn now() -> String {
        let rfc3339 = time::format_description::well_known::Rfc3339;
        time::OffsetDateTime::now_utc().format(&rfc3339).unwrap()
    }

    impl SpecClient {
        /// From `credentials.json` as `serve` writes it (docs/cli.md).
        pub(super) fn new(credentials: &Value) -> SpecClient {
            let key = |name: &str| {
                let text = credentials[name]["key"].as_str().unwrap();
                (
                    credentials[name]["kid"].as_str().unwrap().to_owned(),
                    URL_SAFE_NO_PAD.decode(text).unwrap(),
                )
            };
            let (sign_kid, sign_key) = key("signing");
            let (enc_kid, enc_key) = key("encryption");
            SpecClient {
                token: credentials["tokens"]["admin"].as_str().unwrap().to_owned(),
                signing: (sign_kid, hmac::Key::new(hmac::HMAC_SHA256, &sign_key)),
                encryption: (
                    enc_kid,
                    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &enc_key).unwrap()),
                ),
                next_nonce: 1,
            }
        }

        /// A `demo.echo` Command at `level` (Standard, High or Critical)
        /// with `metadata` (`replay` and whatever else), sealed per
        /// sections 5 and 6; then `tamper` may change the signed value
        /// before it is written.
        pub(super) fn command(
            &mut self,
            id: &str,
            level: &str,
            metadata: Option<Value>,
            tamper: impl FnOnce(&mut Value),
        ) -> Vec<u8> {
            let timestamp = now();
            let payload = json!({"command": "demo.echo", "args": {"n": 1}});
            let mut envelope = json!({
                "version": "1.1",
                "id": id,
                "type": "Command",
                "payload": payload,
                "security": {"security_level": level, "auth_token": self.token},
                "timestamp": timestamp,
            });
            if let Some(metadata) = metadata {
                envelope["metadata"] = metadata;
            }
            if level == "Critical" {
                // Section 6: a 96-bit nonce never repeated under the key,
                // AAD = id "\n" type "\n" timestamp.
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&self.next_nonce.to_be_bytes());
                nonce[..4].copy_from_slice(b"spec");
                self.next_nonce += 1;
                let aad = format!("{id}\nCommand\n{timestamp}");
                let mut text = payload.to_string().into_bytes();
                self.encryption
                    .1
                    .seal_in_place_append_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad.as_bytes()),
                        &mut text,
                    )
                    .unwrap();
                envelope["payload"] = Value::String(b64u(&text));
                envelope["security"]["encryption_info"] = json!({
                    "algorithm": "AES-256-GCM",
                    "key_id": self.encryption.0,
                    "nonce": b64u(&nonce),
                });
            }
            if level == "High" || level == "Critical" {
                // Section 5: HMAC over JCS of the envelope without the
                // signature member.
                let signed = envelope.to_string();
                let mac = hmac::sign(&self.signing.1, signed.as_bytes());
                envelope["security"]["signature"] =
                    Value::String(format!("{}:{}", self.signing.0, b64u(mac.as_ref())));
            }
            tamper(&mut envelope);
            envelope.to_string().into_bytes()
        }
    }
}

#[test]
fn a_client_written_from_section_7a_passes_against_the_server() {
    use serde_json::json;
    use spec_client::SpecClient;

    let served = serve_dev();
    let client = served.connect();
    let mut spec = SpecClient::new(&served_credentials(&served));
    let mut n = 0;
    let mut send = |body: Vec<u8>| -> (String, String) {
        n += 1;
        // Every reply names the message it answers: the id is read back.
        let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let request = mcp_engine::client::Outgoing {
            id: id.clone(),
            codec: Codec::Json,
            body,
        };
        let reply = client.call(&request, WAIT).expect("a correlated reply");
        let reply: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let kind = reply["type"].as_str().unwrap().to_owned();
        let code = if kind == "Error" {
            reply["payload"]["code"].as_str().unwrap().to_owned()
        } else {
            kind.clone()
        };
        (id, code)
    };
    let on = |stream: &str, seq: serde_json::Value| {
        Some(json!({"replay": {"stream": stream, "seq": seq}}))
    };

    for level in ["Standard", "High", "Critical"] {
        let stream = format!("spec-{level}");
        let mut ask = |id: String, seq: serde_json::Value| {
            send(spec.command(&id, level, on(&stream, seq), |_| {})).1
        };
        // New numbers, in order, with gaps, and reordered within the window.
        for seq in [1, 2, 5, 5000, 4500, 3977] {
            assert_eq!(
                ask(format!("{level}-a{seq}"), json!(seq)),
                "Response",
                "{level} {seq}"
            );
        }
        // A repeated number (a new id makes no difference), and one at or
        // below the highest minus the window of 1024.
        assert_eq!(ask(format!("{level}-b1"), json!(5)), "replay_detected");
        assert_eq!(ask(format!("{level}-b2"), json!(3976)), "replay_detected");
        assert_eq!(ask(format!("{level}-b3"), json!(1)), "replay_detected");
        // On a stream, the id is not what is checked: one id, two numbers.
        assert_eq!(ask(format!("{level}-same"), json!(6000)), "Response");
        assert_eq!(ask(format!("{level}-same"), json!(6001)), "Response");
        // The highest number there is, then nothing above it.
        assert_eq!(
            ask(format!("{level}-max"), json!(9_007_199_254_740_991u64)),
            "Response"
        );
    }

    // Malformed replay members: validation_failed, each named.
    let malformed = [
        json!({"replay": {"stream": "s", "seq": 1, "extra": true}}),
        json!({"replay": {"stream": "s", "seq": 0}}),
        json!({"replay": {"stream": "s", "seq": 9_007_199_254_740_992u64}}),
        json!({"replay": {"stream": "s", "seq": "1"}}),
        json!({"replay": {"stream": "s", "seq": 1.5}}),
        json!({"replay": {"stream": "s", "seq": -3}}),
        json!({"replay": {"stream": "a.b", "seq": 1}}),
        json!({"replay": {"stream": "x".repeat(65), "seq": 1}}),
        json!({"replay": {"stream": "s"}}),
        json!({"replay": "s:1"}),
    ];
    for (k, metadata) in malformed.into_iter().enumerate() {
        let id = format!("bad-{k}");
        let (named, code) = send(spec.command(&id, "High", Some(metadata.clone()), |_| {}));
        assert_eq!(
            (named.as_str(), code.as_str()),
            (id.as_str(), "validation_failed"),
            "{metadata}"
        );
    }

    // The signature covers the number: changed after signing, refused.
    let tampered = spec.command(
        "tamper-1",
        "High",
        on("spec-tamper", json!(10)),
        |envelope| {
            envelope["metadata"]["replay"]["seq"] = json!(11);
        },
    );
    assert_eq!(send(tampered).1, "signature_invalid");
    // ... and so is the stream.
    let tampered = spec.command(
        "tamper-2",
        "Critical",
        on("spec-tamper", json!(12)),
        |envelope| {
            envelope["metadata"]["replay"]["stream"] = json!("other");
        },
    );
    assert_eq!(send(tampered).1, "signature_invalid");
    // The untouched number itself was never recorded: it is still new.
    assert_eq!(
        send(spec.command("tamper-3", "High", on("spec-tamper", json!(11)), |_| {})).1,
        "Response"
    );

    // Version 1.0 without a stream: checked by id, as before.
    let plain = |spec: &mut SpecClient, id: &str| {
        spec.command(id, "Standard", None, |envelope| {
            envelope["version"] = json!("1.0")
        })
    };
    assert_eq!(send(plain(&mut spec, "v10-1")).1, "Response");
    assert_eq!(send(plain(&mut spec, "v10-1")).1, "replay_detected");
    assert_eq!(send(plain(&mut spec, "v10-2")).1, "Response");
    assert!(n > 40);
}

/// What a peer can hold, and for how long: partial frames, connection
/// slots, buffers.
mod held_by_a_peer {
    use std::io::{Read, Write};
    use std::net::{IpAddr, SocketAddr};
    use std::time::{Duration, Instant};

    use mcp_engine::SecurityLevel;
    use mcp_engine::codec::Codec;
    use mcp_engine::frame::write_frame;

    use super::common::serve::{WAIT, command, serve_config};
    use super::{blocking_tls, code_of};

    type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

    /// Whether the server closes `stream` within [`WAIT`] (reading and
    /// dropping whatever it sends before).
    fn closed_by_server(stream: &mut impl Read) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                // Reset, or TLS without close_notify.
                Err(_) => return true,
            }
        }
    }

    /// A TLS connection that has sent `bytes` (and completed its
    /// handshake).
    fn holding(served: &super::Served, bytes: &[u8]) -> TlsStream {
        let mut stream = blocking_tls(served);
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
        stream
    }

    /// The starts of frames a slow or stalled peer leaves: 1 and 3 header
    /// bytes, a header and 10 body bytes, a header of 1 MiB and 60 KiB.
    fn partial_frames() -> Vec<Vec<u8>> {
        let mut big = (1u32 << 20).to_be_bytes().to_vec();
        big.push(b'J');
        big.extend(vec![b'x'; 60 * 1024]);
        let mut small = 100u32.to_be_bytes().to_vec();
        small.push(b'J');
        small.extend(b"{\"id\":\"p\"");
        vec![vec![0], vec![0, 0, 0], small, big]
    }

    #[test]
    fn partial_frames_are_closed_by_their_deadline_while_others_are_served() {
        let served = serve_config(|toml| {
            toml.push_str("frame_timeout_ms = 500\nframe_min_rate_kib = 64\n");
        });
        let mut admin = served.envelopes("admin");
        let mut partial: Vec<TlsStream> = partial_frames()
            .iter()
            .map(|bytes| holding(&served, bytes))
            .collect();
        for stream in &mut partial {
            assert!(closed_by_server(stream), "a partial frame was held");
        }
        let client = served.connect();
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, &client, &ping), "Response");
    }

    #[test]
    fn the_idle_timeout_applies_whatever_is_buffered() {
        let served = serve_config(|toml| {
            toml.push_str("idle_timeout_ms = 300\nframe_timeout_ms = 600000\n");
        });
        for bytes in partial_frames() {
            let mut stream = holding(&served, &bytes);
            assert!(closed_by_server(&mut stream), "{} bytes held", bytes.len());
        }
    }

    #[test]
    fn a_large_frame_sent_above_the_minimum_rate_is_served() {
        // 256 KiB in 4 KiB pieces 10 ms apart: longer than the frame
        // timeout, faster than its minimum rate (at 400 KiB/s, or at a
        // quarter of that on a loaded machine).
        let served = serve_config(|toml| {
            toml.push_str("frame_timeout_ms = 300\nframe_min_rate_kib = 64\n");
        });
        let mut frame = Vec::new();
        write_frame(&mut frame, Codec::Json, &vec![b'x'; 256 * 1024]).unwrap();
        let mut stream = blocking_tls(&served);
        let started = Instant::now();
        for piece in frame.chunks(4096) {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(started.elapsed() > Duration::from_millis(300));
        // Not JSON: answered invalid_format, and the connection goes on.
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).unwrap();
        let mut body =
            vec![
                0u8;
                u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize - 1
            ];
        stream.read_exact(&mut body).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("invalid_format"), "{text}");
    }

    /// A plain TCP connection to `to` from `from` (any port).
    fn connect_from(from: IpAddr, to: SocketAddr) -> std::net::TcpStream {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
        socket.connect(&to.into()).unwrap();
        let stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let served = serve_config(|toml| {
            toml.push_str(
                "max_connections = 8\nmax_connections_per_ip = 4\nhandshake_timeout_ms = 600000\n",
            );
        });
        let flooder: IpAddr = "127.0.0.2".parse().unwrap();
        let mut held: Vec<_> = (0..4).map(|_| connect_from(flooder, served.addr)).collect();
        // The fifth and on from that address are closed at once; the four
        // stay (their handshake may take ten minutes here).
        for _ in 0..8 {
            let mut refused = connect_from(flooder, served.addr);
            assert!(
                closed_by_server(&mut refused),
                "a fifth connection was kept"
            );
        }
        // Another address still gets a slot, and is served.
        let mut admin = served.envelopes("admin");
        let client = served.connect();
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, &client, &ping), "Response");
        // And so does a second one, beside the flooder's four.
        let other = connect_from("127.0.0.3".parse().unwrap(), served.addr);
        other
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = (&other).read(&mut byte);
        assert!(
            matches!(&read, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
            "127.0.0.3 was refused: {read:?}"
        );
        held.clear();
    }

    /// `count` framed `demo.echo` requests from `admin`, each with a string
    /// of `size` bytes: a request and its reply just under the dev
    /// config's `max_message_size` (1 MiB) when `size` is 1 MiB less 4 KiB.
    fn echo_frames(
        admin: &mut mcp_engine::client::Envelopes,
        count: usize,
        size: usize,
    ) -> Vec<u8> {
        let payload = format!("\"{}\"", "z".repeat(size));
        let mut frames = Vec::new();
        for _ in 0..count {
            let request = command(admin, SecurityLevel::Standard, "demo.echo", Some(&payload));
            write_frame(&mut frames, request.codec, &request.body).unwrap();
        }
        frames
    }

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;

    /// docs/operations.md, "Memory": what one connection may hold with the
    /// default limits (`outbound_buffer_kib` 256, `max_message_size` 1 MiB),
    /// P = O + 2 x (M + 5) + M/64 + 64 KiB.
    const ONE_CONNECTION: u64 = 256 * KIB + 2 * (MIB + 5) + MIB / 64 + 64 * KIB;

    /// P, and the connection's fixed costs: its buffers' resting room and
    /// TLS, 256 KiB.
    const PER_CONNECTION: u64 = ONE_CONNECTION + 256 * KIB;

    /// docs/operations.md, "Memory": the engine's working memory for
    /// messages this large, 4 x max_message_size for each of the dev
    /// config's two workers and the I/O thread that may run handlers.
    const ENGINE_WORKING: u64 = 3 * 4 * MIB;

    #[test]
    fn peers_that_never_read_hold_no_more_than_the_formula() {
        let served = super::serve_patient_with("write_stall_ms = 600000\n");
        let mut admin = served.envelopes("admin");
        let client = served.connect();
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, &client, &ping), "Response");
        let resting = served.rss_kib() * KIB;
        // Eight peers each send 24 MiB of echoes and never read: far more
        // than the server's share and the socket buffers take.
        let peers = 8;
        let writers: Vec<_> = (0..peers)
            .map(|_| {
                let frames = echo_frames(&mut admin, 24, (MIB - 4 * KIB) as usize);
                let mut stream = blocking_tls(&served);
                std::thread::spawn(move || {
                    let _ = stream.write_all(&frames);
                    stream
                })
            })
            .collect();
        let mut peak = 0;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            peak = peak.max(served.rss_kib() * KIB);
            std::thread::sleep(Duration::from_millis(50));
        }
        let bound = resting + peers * PER_CONNECTION + ENGINE_WORKING;
        assert!(
            peak <= bound,
            "RSS rose from {} MiB to {} MiB, over the formula's {} MiB",
            resting / MIB,
            peak / MIB,
            bound / MIB
        );
        // Held back, not dropped: no peer got all of its requests in.
        assert!(writers.iter().all(|writer| !writer.is_finished()));
        eprintln!(
            "resting {} KiB, peak {} KiB, bound {} KiB",
            resting / KIB,
            peak / KIB,
            bound / KIB
        );
        // And the others are served meanwhile.
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, &client, &ping), "Response");
        drop(served);
        for writer in writers {
            drop(writer.join());
        }
    }

    #[test]
    fn a_small_request_waits_a_few_quanta_behind_a_peer_pushing_large_ones() {
        let served = super::serve_patient();
        let mut admin = served.envelopes("admin");
        let size = (MIB - 4 * KIB) as usize;
        // What one large echo takes on its own, here (a debug build is
        // far slower than a release one): the median of five.
        let heavy = served.connect();
        let mut alone: Vec<Duration> = (0..5)
            .map(|_| {
                let frames = echo_frames(&mut admin, 1, size);
                let started = Instant::now();
                heavy.send_raw(&frames).unwrap();
                heavy.next_unmatched(super::WAIT).expect("no reply");
                started.elapsed()
            })
            .collect();
        alone.sort();
        let one_large = alone[2];
        // The peer pushes 256 of them, reading its replies as they come.
        let frames = echo_frames(&mut admin, 256, size);
        let pusher = std::thread::spawn(move || {
            heavy.send_raw(&frames).unwrap();
            for n in 0..256 {
                assert!(
                    heavy.next_unmatched(super::WAIT).is_some(),
                    "reply {n} of 256 missing"
                );
            }
        });
        let client = served.connect();
        let mut worst = Duration::ZERO;
        let mut calls = 0;
        while !pusher.is_finished() {
            let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
            let started = Instant::now();
            assert_eq!(code_of(&served, &client, &ping), "Response");
            worst = worst.max(started.elapsed());
            calls += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        pusher.join().unwrap();
        assert!(calls >= 5, "only {calls} calls while the peer pushed");
        eprintln!("worst {worst:?} in {calls} calls; one large echo alone {one_large:?}");
        // The ping waits for at most the large frames already in the
        // engine (the peer's share of them) and a quantum of reading: a few
        // large echoes' time, not the peer's whole burst.
        assert!(
            worst <= one_large * 8,
            "worst {worst:?} against {one_large:?} for one large echo alone ({calls} calls)"
        );
    }

    #[test]
    fn memory_returns_near_resting_once_large_frames_are_answered() {
        let served = super::serve_patient();
        let mut admin = served.envelopes("admin");
        let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
        let clients: Vec<_> = (0..50).map(|_| served.connect()).collect();
        for client in &clients {
            let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
            assert_eq!(code_of(&served, client, &ping), "Response");
        }
        std::thread::sleep(Duration::from_secs(3));
        let resting = served.rss_kib() * KIB;
        // Each sends a large frame and gets its large reply; the
        // connections stay open.
        for client in &clients {
            client
                .send_raw(&echo_frames(&mut admin, 1, (MIB - 4 * KIB) as usize))
                .unwrap();
        }
        for client in &clients {
            assert!(client.next_unmatched(super::WAIT).is_some());
        }
        let grown = served.rss_kib() * KIB;
        let until = Instant::now() + super::WAIT;
        let mut now = grown;
        while now > resting + 16 * MIB && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            now = served.rss_kib() * KIB;
        }
        eprintln!(
            "resting {} KiB, {} KiB after the large frames, {} KiB after",
            resting / KIB,
            grown / KIB,
            now / KIB
        );
        assert!(
            now <= resting + 16 * MIB,
            "resting {} MiB, {} MiB after the large frames, still {} MiB",
            resting / MIB,
            grown / MIB,
            now / MIB
        );
        // The connections are open and served.
        assert_eq!(code_of(&served, &clients[0], &ping), "Response");
    }

    /// The server's budget, in process (the binary reports no counters):
    /// sixteen peers that never read, each sending far more than its
    /// share, hold no more in all than docs/operations.md's bound,
    /// 2.02 x memory_budget + one connection's limit; a well-behaved
    /// client is served meanwhile.
    #[test]
    fn the_server_budget_bounds_what_all_connections_hold() {
        use mcp_engine::client::{Connector, Credentials, Envelopes};
        use mcp_engine::engine::EngineBuilder;
        use mcp_engine::server::Server;
        use std::sync::Arc;

        let scratch = tempfile::tempdir().unwrap();
        let setup =
            mcp_engine::dev_setup::DevSetup::write(scratch.path(), "127.0.0.1:0".parse().unwrap())
                .unwrap();
        let mut config = mcp_engine::Config::load(&setup.config_path).unwrap();
        config.timeout_ms = 10_000;
        config.server.memory_budget_mib = 4;
        config.server.write_stall_ms = 600_000;
        // Held back by the budget, a peer's partial frame keeps its clock
        // running; this test is about memory, not that deadline.
        config.server.frame_timeout_ms = 600_000;
        let (builder, _) = mcp_engine::demo::register(EngineBuilder::new(config.clone()));
        let engine = Arc::new(builder.start().unwrap());
        let server = Server::start(engine, &config).unwrap();
        let mut credentials = Credentials::load(&setup.credentials_path).unwrap();
        credentials.addr = server.local_addr().to_string();
        let mut admin = Envelopes::from_credentials(&credentials, "admin").unwrap();
        let ca = credentials.ca_cert.clone().unwrap();
        let requests: Vec<Vec<u8>> = (0..16)
            .map(|_| echo_frames(&mut admin, 12, (MIB - 4 * KIB) as usize))
            .collect();
        let peers: Vec<_> = requests
            .into_iter()
            .map(|frames| {
                let mut stream = super::tls_stream(&ca, server.local_addr());
                std::thread::spawn(move || {
                    let _ = stream.write_all(&frames);
                    stream
                })
            })
            .collect();
        let client = Connector::from_credentials(&credentials)
            .unwrap()
            .connect()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(4);
        let mut over_budget_calls = 0;
        while Instant::now() < until {
            let ping = command(&mut admin, SecurityLevel::Standard, "sys.ping", None);
            let reply = client.call(&ping, WAIT).unwrap();
            let opened = admin.open(reply.codec, &reply.body).unwrap();
            assert!(!opened.is_error(), "{}", opened.to_json());
            if server.stats().held_bytes >= 4 * MIB {
                over_budget_calls += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = server.stats();
        let bound = 4 * MIB * 202 / 100 + ONE_CONNECTION;
        eprintln!(
            "held at most {} KiB against a bound of {} KiB; {over_budget_calls} calls served over the budget",
            stats.held_peak_bytes / KIB,
            bound / KIB
        );
        assert!(stats.held_peak_bytes >= 4 * MIB, "{stats:?}");
        assert!(stats.held_peak_bytes <= bound, "{stats:?}");
        assert!(over_budget_calls > 0);
        assert!(peers.iter().all(|peer| !peer.is_finished()));
        server.shutdown();
        for peer in peers {
            drop(peer.join());
        }
    }

    /// The server's counters, in process (the binary reports none).
    #[test]
    fn each_closure_and_refusal_is_counted() {
        use mcp_engine::Config;
        use mcp_engine::engine::EngineBuilder;
        use mcp_engine::server::Server;
        use std::sync::Arc;

        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.plain_tcp = true;
        config.server.frame_timeout_ms = 2000;
        config.server.max_connections_per_ip = 2;
        let engine = Arc::new(EngineBuilder::new(config.clone()).start().unwrap());
        let server = Server::start(engine, &config).unwrap();
        let addr = server.local_addr();
        let mut partial = std::net::TcpStream::connect(addr).unwrap();
        partial.set_read_timeout(Some(WAIT)).unwrap();
        partial.write_all(&[0, 0]).unwrap();
        let kept = std::net::TcpStream::connect(addr).unwrap();
        kept.set_read_timeout(Some(WAIT)).unwrap();
        // A third from 127.0.0.1, while two are open: refused.
        let mut third = std::net::TcpStream::connect(addr).unwrap();
        third.set_read_timeout(Some(WAIT)).unwrap();
        assert!(closed_by_server(&mut third));
        assert!(closed_by_server(&mut partial));
        let stats = server.stats();
        assert_eq!(stats.refused_per_ip, 1, "{stats:?}");
        assert_eq!(stats.closed_frame_timeout, 1, "{stats:?}");
        // The slot it held is free again: a new one is admitted.
        let mut again = std::net::TcpStream::connect(addr).unwrap();
        again
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(!closed_by_server(&mut again));
        assert_eq!(server.stats().refused_per_ip, 1);
        assert_eq!(server.stats().open, 2);
        server.shutdown();
        drop(kept);
    }
}

/// The admin endpoint of `serve` (dev mode): metrics after traffic,
/// health, and readiness through a shutdown.
mod admin_endpoint {
    use std::time::{Duration, Instant};

    use mcp_engine::SecurityLevel;

    use super::common::serve::{
        WAIT, command, http_get as get, metric as sample, outcome, reply_to, serve_dev,
    };

    #[test]
    fn dev_mode_serves_metrics_health_and_readiness() {
        let served = serve_dev();
        let admin = served.admin_addr();
        assert!(admin.ip().is_loopback());
        assert_eq!(get(admin, "/healthz"), Some((200, "ok\n".to_owned())));
        assert_eq!(get(admin, "/readyz"), Some((200, "ready\n".to_owned())));
        let client = served.connect();
        let mut envelopes = served.envelopes("admin");
        for n in 0..25 {
            let ping = command(
                &mut envelopes,
                SecurityLevel::Standard,
                "demo.echo",
                Some(&format!("{{\"n\":{n}}}")),
            );
            assert_eq!(
                outcome(&mut envelopes, &reply_to(&client, &ping)),
                "Response"
            );
        }
        let denied = command(
            &mut served.envelopes("reader"),
            SecurityLevel::Standard,
            "demo.sleep",
            Some("{\"ms\":1}"),
        );
        assert_eq!(
            outcome(&mut envelopes, &reply_to(&client, &denied)),
            "access_denied"
        );
        let (status, metrics) = get(admin, "/metrics").unwrap();
        assert_eq!(status, 200);
        assert_eq!(sample(&metrics, "mcp_messages_accepted_total "), 26.0);
        assert_eq!(sample(&metrics, "mcp_responses_total "), 25.0);
        assert_eq!(
            sample(
                &metrics,
                "mcp_errors_total{code=\"access_denied\",category=\"security\"} "
            ),
            1.0
        );
        assert_eq!(sample(&metrics, "mcp_connections_open "), 1.0);
        assert!(metrics.contains("# TYPE mcp_stage_latency_seconds histogram\n"));
        // The dev keys by id, never their material.
        for (key_use, id) in [
            ("jwt", "dev-jwt-1"),
            ("signing", "dev-sign-1"),
            ("encryption", "dev-enc-1"),
        ] {
            let line = format!("mcp_key_info{{use=\"{key_use}\",id=\"{id}\",state=\"active\"}} ");
            assert_eq!(sample(&metrics, &line), 1.0);
        }
        let token = served
            .credentials
            .tokens
            .get("admin")
            .expect("an admin token");
        assert!(!metrics.contains(token.as_str()));
        assert!(sample(&metrics, "mcp_replay_ids_capacity ") > 0.0);
        assert!(sample(&metrics, "mcp_replay_streams_capacity ") > 0.0);
        // The process, as the server reads it; the endpoint counts itself
        // (healthz and readyz answered before).
        assert!(sample(&metrics, "process_resident_memory_bytes ") > 0.0);
        assert!(sample(&metrics, "process_open_fds ") >= 3.0);
        assert_eq!(sample(&metrics, "mcp_admin_responses_total "), 2.0);
        assert_eq!(get(admin, "/admin").map(|(status, _)| status), Some(404));
    }

    #[test]
    fn readyz_is_503_from_sigterm_while_what_is_in_flight_is_answered() {
        let mut served = serve_dev();
        let admin = served.admin_addr();
        let client = served.connect();
        let mut envelopes = served.envelopes("admin");
        let warm = command(&mut envelopes, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(
            outcome(&mut envelopes, &reply_to(&client, &warm)),
            "Response"
        );
        // In flight when SIGTERM comes: answered after 150 ms.
        let sleep = command(
            &mut envelopes,
            SecurityLevel::Standard,
            "demo.sleep",
            Some("{\"ms\":150}"),
        );
        let waiter = client.request(&sleep).unwrap();
        served.signal("TERM");
        // Ready until the signal is handled, then 503 until the endpoint
        // closes at exit: never ready again once it said no.
        let mut seen = Vec::new();
        let until = Instant::now() + WAIT;
        while let Some((status, _)) = get(admin, "/readyz") {
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            assert!(Instant::now() < until, "still serving /readyz: {seen:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(seen.ends_with(&[503]), "{seen:?}");
        assert!(seen == [503] || seen == [200, 503], "{seen:?}");
        let reply = waiter
            .wait(WAIT)
            .expect("the in-flight command is answered");
        assert_eq!(outcome(&mut envelopes, &reply), "Response");
        assert!(served.wait_exit().success());
    }
}

mod rate_limits {
    use std::time::Instant;

    use mcp_engine::SecurityLevel;
    use mcp_engine::client::{Client, Envelopes};

    use super::common::serve::{WAIT, command, free_port, http_get, metric, outcome, serve_config};

    /// Sends `n` pings at once as `envelopes`' principal and counts the
    /// outcomes: (Responses, `resource_exhausted` over the rate limit).
    fn pings(client: &Client, envelopes: &mut Envelopes, n: usize) -> (usize, usize) {
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let ping = command(envelopes, SecurityLevel::Standard, "sys.ping", None);
                client.request(&ping).unwrap()
            })
            .collect();
        let (mut served, mut limited) = (0, 0);
        for waiter in waiters {
            let reply = waiter.wait(WAIT).expect("every ping is answered");
            match outcome(envelopes, &reply).as_str() {
                "Response" => served += 1,
                "resource_exhausted" => {
                    let opened = envelopes.open(reply.codec, &reply.body).unwrap();
                    assert!(
                        opened
                            .to_json()
                            .contains("\"message\":\"rate limit: more than "),
                        "{}",
                        opened.to_json()
                    );
                    limited += 1;
                }
                other => panic!("a ping answered {other}"),
            }
        }
        (served, limited)
    }

    #[test]
    fn a_principal_over_its_rate_is_refused_while_another_is_served_and_sighup_changes_it() {
        let admin = free_port();
        let served = serve_config(|toml| {
            let reader = "[authorization.roles.reader]\n";
            assert!(toml.contains(reader));
            *toml = toml.replace(reader, &format!("{reader}rate = 1\nburst = 5\n"));
            toml.push_str(&format!("\n[admin]\nlisten = \"{admin}\"\n"));
        });
        let client = served.connect();
        let mut reader = served.envelopes("reader");
        let mut admin_role = served.envelopes("admin");
        // The reader's 200 and the admin's 2,000, interleaved in windows
        // on one connection: the reader gets its burst and its rate, the
        // admin (no limit) everything.
        let started = Instant::now();
        let (mut reader_served, mut reader_limited, mut admin_served) = (0, 0, 0);
        for _ in 0..10 {
            let (served, limited) = pings(&client, &mut reader, 20);
            reader_served += served;
            reader_limited += limited;
            let (served, limited) = pings(&client, &mut admin_role, 200);
            assert_eq!(limited, 0, "the admin role has no limit");
            admin_served += served;
        }
        let allowed = 5 + started.elapsed().as_secs() as usize + 1;
        assert_eq!(admin_served, 2_000);
        assert_eq!(reader_served + reader_limited, 200);
        assert!(
            (5..=allowed).contains(&reader_served),
            "{reader_served} served, at most {allowed} allowed"
        );
        let (_, metrics) = http_get(admin, "/metrics").unwrap();
        assert_eq!(
            metric(&metrics, "mcp_rate_limited_total{role=\"reader\"} "),
            reader_limited as f64
        );
        assert_eq!(
            metric(
                &metrics,
                "mcp_errors_total{code=\"resource_exhausted\",category=\"system\"} "
            ),
            reader_limited as f64
        );

        // A higher limit on SIGHUP: soon a window of 50 is served whole.
        let path = served.config_path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("rate = 1\nburst = 5\n", "rate = 1000\nburst = 1000\n"),
        )
        .unwrap();
        served.signal("HUP");
        let until = Instant::now() + WAIT;
        loop {
            let (served, _) = pings(&client, &mut reader, 50);
            if served == 50 {
                break;
            }
            assert!(Instant::now() < until, "the new limit never applied");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

mod audit_log {
    use std::time::Instant;

    use mcp_engine::SecurityLevel;
    use mcp_engine::client::Outgoing;
    use serde_json::Value;

    use super::common::serve::{WAIT, command, free_port, http_get, metric, serve_config};
    use super::{code_of, envelopes_with, expired_token};

    /// The audit file's lines, parsed (each must be JSON).
    fn lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// The signature of a sealed request (`kid:signature`), if it has one.
    fn signature_of(request: &Outgoing) -> Option<String> {
        let body: Value = serde_json::from_slice(&request.body).ok()?;
        body["security"]["signature"].as_str().map(str::to_owned)
    }

    #[test]
    fn every_security_refusal_is_a_line_without_secrets_and_a_flood_is_a_few() {
        let admin_addr = free_port();
        let served = serve_config(|toml| {
            let reader = "[authorization.roles.reader]\n";
            *toml = toml.replace(reader, &format!("{reader}rate = 1\nburst = 1\n"));
            toml.push_str(&format!(
                "\n[audit]\nfile = \"audit.log\"\ncollapse_secs = 1\n\n[admin]\nlisten = \"{admin_addr}\"\n"
            ));
        });
        let path = served.dir.join("audit.log");
        let client = served.connect();
        let mut admin = served.envelopes("admin");
        let mut reader = served.envelopes("reader");
        let admin_token = served.credentials.token("admin").unwrap().to_owned();
        let marker = r#"{"payload_marker":"PAYLOAD-NEVER-LOGGED"}"#;
        let expired = expired_token(&served);
        let cases: Vec<(&str, Option<&str>, Outgoing)> = vec![
            (
                "authentication_failed",
                None,
                command(
                    &mut envelopes_with(&served, "not.a-token.at-all", false, false),
                    SecurityLevel::Standard,
                    "demo.echo",
                    Some(marker),
                ),
            ),
            (
                "token_expired",
                None,
                command(
                    &mut envelopes_with(&served, &expired, false, false),
                    SecurityLevel::Standard,
                    "demo.echo",
                    Some(marker),
                ),
            ),
            (
                "signature_invalid",
                Some("admin"),
                command(
                    &mut envelopes_with(&served, &admin_token, true, false),
                    SecurityLevel::High,
                    "demo.echo",
                    Some(marker),
                ),
            ),
            (
                "encryption_failed",
                Some("admin"),
                command(
                    &mut envelopes_with(&served, &admin_token, false, true),
                    SecurityLevel::Critical,
                    "demo.echo",
                    Some(marker),
                ),
            ),
            (
                "access_denied",
                Some("reader"),
                command(
                    &mut reader,
                    SecurityLevel::Standard,
                    "demo.sleep",
                    Some(r#"{"ms":1,"payload_marker":"PAYLOAD-NEVER-LOGGED"}"#),
                ),
            ),
        ];
        let mut signatures = Vec::new();
        for (code, _, request) in &cases {
            assert_eq!(&code_of(&served, &client, request), code, "{}", request.id);
            signatures.extend(signature_of(request));
        }
        // A replay, signed: its signature must not be logged either.
        let once = command(&mut admin, SecurityLevel::High, "demo.echo", Some(marker));
        signatures.extend(signature_of(&once));
        assert_eq!(code_of(&served, &client, &once), "Response");
        assert_eq!(code_of(&served, &client, &once), "replay_detected");
        // The reader over its rate (one a second, one at once).
        let pings: Vec<_> = (0..5)
            .map(|_| {
                let ping = command(&mut reader, SecurityLevel::Standard, "sys.ping", None);
                client.request(&ping).unwrap()
            })
            .collect();
        for waiter in pings {
            waiter.wait(WAIT).expect("each ping is answered");
        }
        // An admin command, and a reload.
        let metrics = command(&mut admin, SecurityLevel::Standard, "sys.metrics", None);
        assert_eq!(code_of(&served, &client, &metrics), "Response");
        served.signal("HUP");

        // 100,000 bad tokens from one peer.
        const FLOOD: u64 = 100_000;
        let started = Instant::now();
        let mut bad = envelopes_with(&served, "not.a-token.at-all", false, false);
        for _ in 0..FLOOD / 2_000 {
            let waiters: Vec<_> = (0..2_000)
                .map(|_| {
                    let request =
                        command(&mut bad, SecurityLevel::Standard, "demo.echo", Some(marker));
                    client.request(&request).unwrap()
                })
                .collect();
            for waiter in waiters {
                waiter.wait(WAIT).expect("each bad token is answered");
            }
        }
        let flood_secs = started.elapsed().as_secs();

        // Every bad token is in a line or in a collapsed line's count, or
        // counted dropped, once the last interval (1 s) has ended.
        let until = Instant::now() + WAIT;
        let (all, dropped) = loop {
            let all = lines(&path);
            let (_, text) = http_get(admin_addr, "/metrics").unwrap();
            let dropped = metric(&text, "mcp_audit_dropped_total ") as u64;
            let counted: u64 = all
                .iter()
                .filter(|line| line["code"] == "authentication_failed")
                .map(|line| line["count"].as_u64().unwrap())
                .sum();
            let reloaded = all.iter().any(|line| line["event"] == "reload");
            if counted + dropped == FLOOD + 1 && reloaded {
                break (all, dropped);
            }
            assert!(
                Instant::now() < until,
                "{counted} + {dropped} dropped bad tokens of {}; reloaded {reloaded}",
                FLOOD + 1
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let flood_lines = all
            .iter()
            .filter(|line| line["code"] == "authentication_failed")
            .count() as u64;
        assert!(
            flood_lines <= 2 * (flood_secs + 3),
            "{flood_lines} lines for {FLOOD} bad tokens in {flood_secs} s"
        );
        assert!(dropped < FLOOD / 10, "{dropped} dropped");

        // Each refusal of the security category: a line with its fields.
        let peer = "127.0.0.1";
        for (code, principal, request) in &cases {
            let line = all
                .iter()
                .find(|line| line["message_id"] == request.id.as_str())
                .unwrap_or_else(|| panic!("no line for {code} ({})", request.id));
            assert_eq!(line["event"], "refused");
            assert_eq!(line["code"], *code);
            assert_eq!(line["peer"], peer);
            assert_eq!(line["principal"].as_str(), *principal, "{code}");
            assert!(line["time"].is_string());
            if *code != "encryption_failed" {
                // An encrypted payload's command cannot be read.
                assert!(line["command"].is_string(), "{code}: {line}");
            }
        }
        let replay = all
            .iter()
            .find(|line| line["code"] == "replay_detected")
            .expect("a replay line");
        assert_eq!(replay["message_id"], once.id.as_str());
        assert_eq!(replay["principal"], "admin");
        let limited = all
            .iter()
            .find(|line| line["code"] == "resource_exhausted")
            .expect("a rate-limit line");
        assert_eq!(limited["principal"], "reader");
        assert!(
            limited["detail"]
                .as_str()
                .unwrap()
                .starts_with("rate limit:")
        );
        let admin_command = all
            .iter()
            .find(|line| line["event"] == "admin_command")
            .expect("an admin command line");
        assert_eq!(admin_command["command"], "sys.metrics");
        assert_eq!(admin_command["principal"], "admin");
        let reload = all.iter().find(|line| line["event"] == "reload").unwrap();
        assert!(
            reload["detail"]
                .as_str()
                .unwrap()
                .contains("jwt dev-jwt-1 active")
        );

        // None of the secrets: tokens, keys, signatures, payloads.
        let text = std::fs::read_to_string(&path).unwrap();
        let credentials = &served.credentials;
        let mut secrets: Vec<String> = credentials.tokens.values().cloned().collect();
        secrets.push(admin_token);
        secrets.push(expired);
        secrets.push(credentials.jwt.as_ref().unwrap().key.key.to_string());
        secrets.push(credentials.signing.as_ref().unwrap().key.to_string());
        secrets.push(credentials.encryption.as_ref().unwrap().key.to_string());
        for signature in &signatures {
            secrets.push(
                signature
                    .split_once(':')
                    .map_or(signature.as_str(), |(_, s)| s)
                    .to_owned(),
            );
        }
        secrets.push("not.a-token.at-all".to_owned());
        secrets.push("PAYLOAD-NEVER-LOGGED".to_owned());
        assert!(signatures.len() >= 2, "{signatures:?}");
        for secret in &secrets {
            assert!(secret.len() >= 16, "a secret to look for: {secret}");
            assert!(
                !text.contains(secret.as_str()),
                "the audit log holds {secret}"
            );
        }
    }

    #[test]
    fn sighup_reopens_the_file_that_logrotate_moved() {
        let served = serve_config(|toml| toml.push_str("\n[audit]\nfile = \"audit.log\"\n"));
        let (path, moved) = (served.dir.join("audit.log"), served.dir.join("audit.log.1"));
        let client = served.connect();
        let mut bad = envelopes_with(&served, "not.a-token.at-all", false, false);
        let wait_for = |path: &std::path::Path, what: &dyn Fn(&Value) -> bool| {
            let until = Instant::now() + WAIT;
            while !lines(path).iter().any(what) {
                assert!(Instant::now() < until, "no such line in {}", path.display());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        let first = command(&mut bad, SecurityLevel::Standard, "demo.echo", None);
        assert_eq!(code_of(&served, &client, &first), "authentication_failed");
        wait_for(&path, &|line| line["message_id"] == first.id.as_str());
        std::fs::rename(&path, &moved).unwrap();
        served.signal("HUP");
        wait_for(&path, &|line| line["event"] == "reload");
        let second = command(&mut bad, SecurityLevel::Standard, "sys.ping", None);
        assert_eq!(code_of(&served, &client, &second), "authentication_failed");
        wait_for(&path, &|line| line["message_id"] == second.id.as_str());
        assert!(
            !lines(&moved)
                .iter()
                .any(|line| line["message_id"] == second.id.as_str())
        );
        assert_eq!(lines(&moved).len(), 1);
    }
}
