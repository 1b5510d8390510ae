//! The broker restarts mid-run (feature `nats`; needs Debian's
//! `nats-server`): the engines' clients reconnect and subscribe again on
//! their own, and the engines serve as before.
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::nats::{Broker, NatsEngine, nats_config};

/// Sends `count` commands (ids `{prefix}-{n}`) one after another and
/// returns how many were answered with a Response. A request before the
/// engines have subscribed again ("no responders") is sent again, for up
/// to 30 s.
async fn serve_round(
    url: &str,
    subject: &str,
    sealer: &mut mcp_engine::security::Sealer,
    prefix: &str,
    count: usize,
) -> usize {
    let client = async_nats::connect(url).await.unwrap();
    let mut responses = 0;
    for n in 0..count {
        let body = Bytes::from(crate::common::command(
            sealer,
            &format!("{prefix}-{n}"),
            "demo.echo",
        ));
        let start = Instant::now();
        let reply = loop {
            match client.request(subject.to_owned(), body.clone()).await {
                Ok(reply) => break reply,
                Err(e) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "no engine answers: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        if String::from_utf8_lossy(&reply.payload).contains(r#""type":"Response""#) {
            responses += 1;
        }
    }
    responses
}

#[test]
fn engines_reconnect_after_the_broker_restarts_and_serve_again() {
    let mut broker = Broker::start();
    let url = broker.url();
    let setup = crate::common::setup(|config| config.nats = Some(nats_config(&url, "restart")));
    let subject = setup.config.nats.as_ref().unwrap().subject.clone();
    let mut engines: Vec<NatsEngine> = (0..2).map(|_| NatsEngine::start(&setup.config)).collect();
    let mut sealer = setup.sealer(&setup.admin);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    assert_eq!(
        runtime.block_on(serve_round(&url, &subject, &mut sealer, "before", 200)),
        200
    );

    broker.kill();
    let stats = |engines: &[NatsEngine]| -> Vec<_> {
        engines
            .iter()
            .map(|e| e.ingress.as_ref().unwrap().stats())
            .collect()
    };
    assert!(
        crate::common::eventually(|| stats(&engines).iter().all(|s| !s.connected)),
        "the engines saw the broker go"
    );
    let broker = Broker::start_on(broker.port());
    let reconnected = Instant::now();
    while !stats(&engines).iter().all(|s| s.connected) {
        assert!(
            reconnected.elapsed() < Duration::from_secs(30),
            "the engines did not reconnect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    assert_eq!(
        runtime.block_on(serve_round(&url, &subject, &mut sealer, "after", 200)),
        200
    );
    for engine in &mut engines {
        let stats = engine.stop();
        assert!(stats.disconnects >= 1 && stats.reconnects >= 1, "{stats:?}");
        assert_eq!((stats.unpublished, stats.abandoned), (0, 0), "{stats:?}");
    }
    drop(broker);
}

#[test]
fn an_engine_stops_while_its_broker_is_down() {
    let mut broker = Broker::start();
    let url = broker.url();
    let setup = crate::common::setup(|config| {
        let mut nats = nats_config(&url, "down");
        nats.drain_timeout_ms = 200;
        config.nats = Some(nats);
    });
    let mut engine = NatsEngine::start(&setup.config);
    broker.kill();
    assert!(crate::common::eventually(|| !engine
        .ingress
        .as_ref()
        .unwrap()
        .stats()
        .connected));
    // The drain cannot reach the broker: shutdown gives up on it rather
    // than waiting for the broker to come back.
    let stats = engine.stop();
    assert_eq!((stats.abandoned, stats.unpublished), (0, 0), "{stats:?}");
}
