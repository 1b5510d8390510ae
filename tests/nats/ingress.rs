//! The NATS ingress message by message (feature `nats`; needs Debian's
//! `nats-server`): the three ways a request names its codec and the reply
//! in kind, what cannot be read, a full in-flight window, events, and a
//! broker that asks for credentials (user and password, token, nkey) or
//! TLS.
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;
use futures_util::StreamExt as _;
use mcp_engine::codec::Codec;
use mcp_engine::config::{NatsAuth, NatsTls};
use mcp_engine::engine::EngineBuilder;
use mcp_engine::nats::{CODEC_HEADER, NatsIngress};
use mcp_engine::{Code, MessageType, SecurityLevel};

use crate::common::nats::{Broker, NatsEngine, nats_config};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn with_byte(codec: Codec, body: &[u8]) -> Bytes {
    let mut framed = vec![codec.byte()];
    framed.extend_from_slice(body);
    Bytes::from(framed)
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

#[test]
fn each_framing_is_answered_in_kind_and_an_unreadable_body_with_invalid_format() {
    let broker = Broker::start();
    let url = broker.url();
    let setup = crate::common::setup(|config| config.nats = Some(nats_config(&url, "framing")));
    let subject = "framing.requests";
    let mut engine = NatsEngine::start(&setup.config);
    let mut sealer = setup.sealer(&setup.admin);
    let echo = |sealer: &mut _, id: &str| {
        crate::common::message(
            sealer,
            id,
            MessageType::Command,
            SecurityLevel::Standard,
            r#"{"command":"demo.echo","args":{"n":1}}"#,
        )
    };
    let json = |sealer: &mut _, id: &str| crate::common::encode(&echo(sealer, id), Codec::Json);
    let binary = |sealer: &mut _, id: &str| crate::common::encode(&echo(sealer, id), Codec::Binary);
    let header = |name: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(CODEC_HEADER, HeaderValue::from_str(name).unwrap());
        headers
    };
    runtime().block_on(async {
        let nc = async_nats::connect(url.as_str()).await.unwrap();
        let ask = |payload: Bytes, headers: Option<HeaderMap>| {
            let nc = nc.clone();
            async move {
                let request = async_nats::Request::new()
                    .payload(payload)
                    .timeout(Some(Duration::from_secs(10)));
                let request = match headers {
                    Some(headers) => request.headers(headers),
                    None => request,
                };
                nc.send_request(subject, request).await.unwrap()
            }
        };

        // A codec byte, JSON and binary: the reply starts with the same.
        let reply = ask(with_byte(Codec::Json, &json(&mut sealer, "j-1")), None).await;
        assert_eq!(reply.payload.first(), Some(&b'J'));
        assert!(text(&reply.payload).contains(r#""type":"Response""#));
        let reply = ask(with_byte(Codec::Binary, &binary(&mut sealer, "r-1")), None).await;
        assert_eq!(reply.payload.first(), Some(&b'R'));
        let message = crate::common::decode_reply(Codec::Binary, &reply.payload[1..]);
        assert_eq!(message.kind, MessageType::Response);

        // Bare JSON: bare JSON back.
        let reply = ask(Bytes::from(json(&mut sealer, "bare-1")), None).await;
        assert!(text(&reply.payload).starts_with('{'));
        assert!(text(&reply.payload).contains(r#""type":"Response""#));

        // The header: the header back, the envelope bare.
        let reply = ask(
            Bytes::from(binary(&mut sealer, "h-1")),
            Some(header("binary")),
        )
        .await;
        let named = reply.headers.as_ref().and_then(|h| h.get(CODEC_HEADER));
        assert_eq!(named.map(HeaderValue::as_str), Some("binary"));
        let message = crate::common::decode_reply(Codec::Binary, &reply.payload);
        assert_eq!(message.kind, MessageType::Response);
        let reply = ask(Bytes::from(json(&mut sealer, "h-2")), Some(header("JSON"))).await;
        let named = reply.headers.as_ref().and_then(|h| h.get(CODEC_HEADER));
        assert_eq!(named.map(HeaderValue::as_str), Some("json"));

        // What cannot be read is answered, in JSON, with its code.
        for (payload, headers) in [
            (Bytes::from_static(b"hello"), None),
            (Bytes::from_static(b""), None),
            (Bytes::from(json(&mut sealer, "y-1")), Some(header("yaml"))),
        ] {
            let reply = ask(payload, headers).await;
            assert!(
                text(&reply.payload).contains("invalid_format"),
                "{}",
                text(&reply.payload)
            );
        }
        // A body the engine refuses is the engine's Error, in kind.
        let reply = ask(with_byte(Codec::Json, b"{\"id\":\"x\"}"), None).await;
        assert_eq!(reply.payload.first(), Some(&b'J'));
        assert!(text(&reply.payload).contains(r#""type":"Error""#));
    });
    let stats = engine.stop();
    assert_eq!(stats.malformed, 3, "{stats:?}");
    assert_eq!(stats.received, 9);
    assert_eq!(stats.published, 9);
}

#[test]
fn past_max_in_flight_a_request_is_answered_resource_exhausted() {
    let broker = Broker::start();
    let url = broker.url();
    let setup = crate::common::setup(|config| {
        let mut nats = nats_config(&url, "window");
        nats.max_in_flight = 1;
        config.nats = Some(nats);
        config.timeout_ms = 5000;
    });
    let mut engine = NatsEngine::start(&setup.config);
    let mut sealer = setup.sealer(&setup.admin);
    let sleep = crate::common::message(
        &mut sealer,
        "slow-1",
        MessageType::Command,
        SecurityLevel::Standard,
        r#"{"command":"demo.sleep","args":{"ms":1000}}"#,
    );
    let sleep = Bytes::from(crate::common::encode(&sleep, Codec::Json));
    let quick = Bytes::from(crate::common::command(&mut sealer, "quick-1", "demo.echo"));
    let (slow_reply, quick_reply) = runtime().block_on(async {
        let nc = async_nats::connect(url.as_str()).await.unwrap();
        let inbox = nc.new_inbox();
        let mut replies = nc.subscribe(format!("{inbox}.*")).await.unwrap();
        nc.flush().await.unwrap();
        nc.publish_with_reply("window.requests", format!("{inbox}.slow"), sleep)
            .await
            .unwrap();
        nc.publish_with_reply("window.requests", format!("{inbox}.quick"), quick)
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let reply = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .unwrap()
                .unwrap();
            got.push((reply.subject.to_string(), text(&reply.payload)));
        }
        got.sort();
        (got[1].1.clone(), got[0].1.clone())
    });
    assert!(
        quick_reply.contains(Code::ResourceExhausted.as_str()),
        "{quick_reply}"
    );
    assert!(quick_reply.contains(r#""retryable":true"#), "{quick_reply}");
    // Refused before the engine saw it, and still named.
    assert!(
        quick_reply.contains(r#""correlation_id":"quick-1""#),
        "{quick_reply}"
    );
    assert!(slow_reply.contains(r#""type":"Response""#), "{slow_reply}");
    let stats = engine.stop();
    assert_eq!(
        (stats.refused_at_window, stats.published),
        (1, 2),
        "{stats:?}"
    );
}

#[test]
fn events_are_delivered_and_nothing_is_published_back() {
    let broker = Broker::start();
    let url = broker.url();
    let setup = crate::common::setup(|config| config.nats = Some(nats_config(&url, "events")));
    let mut engine = NatsEngine::start(&setup.config);
    let mut sealer = setup.sealer(&setup.admin);
    let events: Vec<Bytes> = (0..10)
        .map(|n| {
            let event = crate::common::message(
                &mut sealer,
                &format!("e-{n}"),
                MessageType::Event,
                SecurityLevel::Standard,
                r#"{"event":"demo.notice","data":{"n":1}}"#,
            );
            Bytes::from(crate::common::encode(&event, Codec::Json))
        })
        .collect();
    let stray = runtime().block_on(async {
        let nc = async_nats::connect(url.as_str()).await.unwrap();
        let inbox = nc.new_inbox();
        let mut replies = nc.subscribe(inbox.clone()).await.unwrap();
        nc.flush().await.unwrap();
        for event in events {
            // Even with a reply subject, an event gets no reply.
            nc.publish_with_reply("events.events", inbox.clone(), event)
                .await
                .unwrap();
        }
        nc.flush().await.unwrap();
        tokio::time::timeout(Duration::from_millis(500), replies.next())
            .await
            .ok()
    });
    assert!(stray.is_none(), "an event was answered");
    let engine_ref = Arc::clone(&engine.engine);
    assert!(crate::common::eventually(
        || engine_ref.metrics().events == 10
    ));
    let stats = engine.stop();
    assert_eq!((stats.received, stats.published), (10, 0), "{stats:?}");
}

/// Whether an engine with `auth` and `tls` starts against the broker at
/// `url`, and answers a request from a client connected with `client`.
fn serves(
    url: &str,
    auth: NatsAuth,
    tls: Option<NatsTls>,
    client: async_nats::ConnectOptions,
) -> Result<(), mcp_engine::Error> {
    let setup = crate::common::setup(|config| {
        let mut nats = nats_config(url, "auth");
        nats.auth = auth;
        nats.tls = tls;
        nats.connect_timeout_ms = 2000;
        config.nats = Some(nats);
    });
    let (builder, _) = mcp_engine::demo::register(EngineBuilder::new(setup.config.clone()));
    let engine = Arc::new(builder.start().unwrap());
    let ingress = NatsIngress::start(Arc::clone(&engine), &setup.config)?;
    let mut sealer = setup.sealer(&setup.admin);
    let body = Bytes::from(crate::common::command(&mut sealer, "a-1", "demo.echo"));
    let reply = runtime().block_on(async {
        let nc = client.connect(url).await.unwrap();
        nc.request("auth.requests", body).await.unwrap()
    });
    assert!(text(&reply.payload).contains(r#""type":"Response""#));
    ingress.shutdown();
    engine.shutdown();
    Ok(())
}

#[test]
fn credentials_and_tls_reach_a_broker_that_asks_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path
    };

    let broker = Broker::start_with(&["--user", "mcp", "--pass", "s3cret"]);
    let url = broker.url();
    let user = |password: &str| NatsAuth::UserPassword {
        user: "mcp".into(),
        password_file: secret("password", password),
    };
    let client =
        || async_nats::ConnectOptions::with_user_and_password("mcp".into(), "s3cret".into());
    serves(&url, user("s3cret"), None, client()).unwrap();
    let refused = serves(&url, user("wrong"), None, client()).unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused}");
    drop(broker);

    let broker = Broker::start_with(&["--auth", "t0ken"]);
    let url = broker.url();
    let token = NatsAuth::Token {
        token_file: secret("token", "t0ken"),
    };
    let client = async_nats::ConnectOptions::with_token("t0ken".into());
    serves(&url, token, None, client).unwrap();
    drop(broker);

    // An nkey: the broker knows the public key, the engine holds the seed.
    let engine_key = nkeys::KeyPair::new_user();
    let client_key = nkeys::KeyPair::new_user();
    let config = secret(
        "nkeys.conf",
        &format!(
            "authorization {{ users = [ {{ nkey: {} }}, {{ nkey: {} }} ] }}",
            engine_key.public_key(),
            client_key.public_key()
        ),
    );
    let broker = Broker::start_with(&["-c", &config.display().to_string()]);
    let url = broker.url();
    let nkey = NatsAuth::Nkey {
        seed_file: secret("engine.nk", &engine_key.seed().unwrap()),
    };
    let client = async_nats::ConnectOptions::with_nkey(client_key.seed().unwrap());
    serves(&url, nkey, None, client).unwrap();
    let stranger = NatsAuth::Nkey {
        seed_file: secret("stranger.nk", &nkeys::KeyPair::new_user().seed().unwrap()),
    };
    let client = async_nats::ConnectOptions::with_nkey(client_key.seed().unwrap());
    assert!(serves(&url, stranger, None, client).is_err());
    drop(broker);

    // TLS with the dev setup's CA and server certificate (for 127.0.0.1).
    let certs = crate::common::setup(|_| {});
    let path = |name: &str| certs.dir.path().join(name).display().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server-key.pem"), path("ca.pem"));
    let broker = Broker::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let url = broker.url();
    let tls = NatsTls::trusting(ca.clone());
    let client = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(ca.into());
    serves(&url, NatsAuth::None, Some(tls), client).unwrap();
    // Without the CA, the broker's certificate is not trusted.
    let stranger = crate::common::setup(|_| {});
    let wrong_ca = NatsTls::trusting(stranger.dir.path().join("ca.pem"));
    let client = async_nats::ConnectOptions::new();
    assert!(serves(&url, NatsAuth::None, Some(wrong_ca), client).is_err());
}
