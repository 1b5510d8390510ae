//! The harness and the baseline end to end, small: every message sent is
//! answered once, the baseline accepts what the engine accepts and refuses
//! what it refuses, the budgets name their misses. Counts only, no timing.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use mcp_engine::SecurityLevel;
use mcp_engine::codec::Codec;
use mcp_perf::baseline::run_baseline;
use mcp_perf::harness::{
    Budgets, Figures, NetTarget, Pace, Plan, Prepared, Setup, Workload, run_inproc, run_net,
};

fn setup() -> Setup {
    Setup::new(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))).expect("dev setup")
}

fn workload(level: SecurityLevel, event_percent: u8) -> Workload {
    Workload {
        level,
        codec: Codec::Json,
        payload_bytes: 32,
        event_percent,
        streams: true,
    }
}

/// Closed loop until `count` messages are used up (the duration is far
/// longer than they take), in batches of 8.
fn closed(window: usize) -> Plan {
    closed_in_batches(window, 8)
}

fn closed_in_batches(window: usize, batch: usize) -> Plan {
    Plan {
        pace: Pace::Closed { window, batch },
        duration: Duration::from_secs(600),
        warmup: Duration::ZERO,
    }
}

fn assert_all_answered(figures: &Figures, count: u64) {
    assert_eq!(figures.sent, count, "{figures:?}");
    assert_eq!(figures.answered, count, "{figures:?}");
    assert_eq!(figures.unanswered, 0);
    assert!(figures.errors.is_empty(), "{:?}", figures.errors);
}

#[test]
fn every_message_in_process_is_answered_once_without_error() {
    let setup = setup();
    for (level, events) in [(SecurityLevel::Standard, 0), (SecurityLevel::Critical, 30)] {
        let messages = workload(level, events)
            .make(&setup.credentials, 3000)
            .expect("workload");
        let figures = run_inproc(setup.config.clone(), messages, &closed(64)).expect("run");
        assert_all_answered(&figures, 3000);
    }
}

#[test]
fn every_message_in_process_is_answered_once_whatever_the_batch() {
    let setup = setup();
    // One at a time; batches that do not divide the messages (the last one
    // short); a batch larger than the window (the window grows to it).
    for (window, batch) in [(64, 1), (64, 7), (16, 100)] {
        let messages = workload(SecurityLevel::Standard, 10)
            .make(&setup.credentials, 1000)
            .expect("workload");
        let plan = closed_in_batches(window, batch);
        let figures = run_inproc(setup.config.clone(), messages, &plan).expect("run");
        assert_all_answered(&figures, 1000);
    }
}

#[test]
fn the_baseline_answers_every_level_without_error() {
    let setup = setup();
    for level in [
        SecurityLevel::Low,
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ] {
        let messages = workload(level, 20)
            .make(&setup.credentials, 2000)
            .expect("workload");
        let figures =
            run_baseline(&setup.config, &setup.credentials, messages, &closed(64)).expect("run");
        assert_all_answered(&figures, 2000);
    }
}

/// Replaces the first `from` after `marker` in the message's body.
fn tamper(message: &mut Prepared, marker: &str, from: u8, to: u8) {
    let body = &mut message.body;
    let start = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker")
        + marker.len();
    let at = body[start..].iter().position(|b| *b == from).expect("byte") + start;
    body[at] = to;
}

#[test]
fn the_baseline_refuses_what_the_engine_refuses() {
    let setup = setup();
    let make = || {
        workload(SecurityLevel::Critical, 0)
            .make(&setup.credentials, 4)
            .expect("workload")
    };
    let mut engine = make();
    let mut baseline = make();
    for messages in [&mut engine, &mut baseline] {
        // A bad signature, a bad token, a duplicate id, one good message.
        tamper(&mut messages[0], "\"signature\":\"", b':', b';');
        tamper(&mut messages[1], "\"auth_token\":\"", b'.', b'_');
        let copy = Prepared {
            id: messages[3].id.clone(),
            codec: messages[3].codec,
            body: messages[3].body.clone(),
            lane: messages[3].lane,
        };
        messages[2] = copy;
    }
    let engine = run_inproc(setup.config.clone(), engine, &closed(1)).expect("engine");
    let baseline =
        run_baseline(&setup.config, &setup.credentials, baseline, &closed(1)).expect("baseline");
    for figures in [&engine, &baseline] {
        assert_eq!(figures.answered, 4, "{figures:?}");
        assert_eq!(
            figures.errors.get("signature_invalid"),
            Some(&1),
            "{:?}",
            figures.errors
        );
        assert_eq!(
            figures.errors.get("authentication_failed"),
            Some(&1),
            "{:?}",
            figures.errors
        );
        assert_eq!(
            figures.errors.get("replay_detected"),
            Some(&1),
            "{:?}",
            figures.errors
        );
    }
}

#[test]
fn every_message_over_tls_and_tcp_is_answered_once() {
    let setup = setup();
    for tls in [true, false] {
        let messages = workload(SecurityLevel::High, 10)
            .make(&setup.credentials, 2000)
            .expect("workload");
        let figures = run_net(
            &NetTarget::Own { tls },
            setup.config.clone(),
            &setup.credentials,
            messages,
            &closed(128),
            4,
        )
        .expect("run");
        assert_all_answered(&figures, 2000);
    }
}

#[test]
fn the_budgets_name_each_miss() {
    let mut figures = Figures {
        sent: 1000,
        answered: 1000,
        peak_rss_bytes: 600 * 1024 * 1024,
        cpu_share: Some(0.7),
        ..Figures::default()
    };
    figures.latency_us.p95 = 150_000.0;
    figures.latency_us.p99 = 160_000.0;
    figures.errors.insert("timeout".into(), 20);
    let misses = Budgets::default().misses(&figures);
    let all = misses.join("\n");
    assert_eq!(misses.len(), 5, "{all}");
    for word in ["p95", "processing", "error rate", "RSS", "CPU"] {
        assert!(all.contains(word), "{word} missing from {all}");
    }
    let good = Figures {
        sent: 1000,
        answered: 1000,
        cpu_share: Some(0.01),
        ..Figures::default()
    };
    assert!(Budgets::default().misses(&good).is_empty());
}

#[test]
fn an_open_loop_plan_spaces_messages_evenly() {
    let plan = Plan {
        pace: Pace::Open {
            rate: 10_000,
            spin: false,
        },
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
    };
    assert_eq!(plan.messages(0), 110_000);
    // One at a time in an open loop; a closed loop's batch, at least 1.
    assert_eq!(plan.batch_size(), 1);
    assert_eq!(closed_in_batches(64, 7).batch_size(), 7);
    assert_eq!(closed_in_batches(64, 0).batch_size(), 1);
    assert_eq!(plan.due(0), Some(Duration::ZERO));
    assert_eq!(plan.due(10_000), Some(Duration::from_secs(1)));
    assert_eq!(plan.due(3), Some(Duration::from_micros(300)));
    let short = plan.measured(Duration::from_secs(4));
    assert_eq!(short.duration, Duration::from_secs(3));
}

#[test]
fn an_open_loop_run_reports_the_senders_lag_and_a_closed_loop_does_not() {
    let setup = setup();
    // Sleeping before each send, and spinning instead.
    for spin in [false, true] {
        let open = Plan {
            pace: Pace::Open { rate: 10_000, spin },
            duration: Duration::from_millis(200),
            warmup: Duration::from_millis(50),
        };
        let messages = workload(SecurityLevel::Standard, 0)
            .make(&setup.credentials, open.messages(0))
            .expect("workload");
        let figures = run_inproc(setup.config.clone(), messages, &open).expect("run");
        assert_all_answered(&figures, 2000);
        let lag = figures.send_lag_us.expect("an open loop records its lag");
        assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{lag:?}");
    }

    let messages = workload(SecurityLevel::Standard, 0)
        .make(&setup.credentials, 500)
        .expect("workload");
    let figures = run_inproc(setup.config.clone(), messages, &closed(64)).expect("run");
    assert_all_answered(&figures, 500);
    assert!(figures.send_lag_us.is_none());
}

/// `--mode nats` (feature `nats`; runs Debian's `nats-server`): every
/// message, JSON and binary, through the broker to one engine and to
/// three in a queue group, is answered once.
#[cfg(feature = "nats")]
#[test]
fn every_message_through_nats_is_answered_once() {
    use mcp_perf::harness::{NatsBroker, run_nats};
    let setup = setup();
    for (engines, codec) in [(1, Codec::Json), (3, Codec::Binary)] {
        let messages = Workload {
            codec,
            ..workload(SecurityLevel::Critical, 10)
        }
        .make(&setup.credentials, 2000)
        .expect("workload");
        let figures = run_nats(
            &NatsBroker::Own,
            setup.config.clone(),
            &setup.credentials,
            messages,
            &closed(128),
            2,
            engines,
        )
        .expect("run");
        assert_all_answered(&figures, 2000);
    }
}

#[test]
fn a_sustained_run_makes_its_messages_as_it_goes_and_answers_each_once() {
    use mcp_perf::harness::{Framing, Generated, Lanes};
    let setup = setup();
    // Each level, JSON written from its parts and binary through the
    // library, commands and events: the engine accepts every one.
    // On replay streams, and (the last two) version 1.0 checked by id.
    let cases = [
        (SecurityLevel::Standard, Codec::Json, 0, true),
        (SecurityLevel::High, Codec::Json, 20, true),
        (SecurityLevel::Critical, Codec::Json, 20, true),
        (SecurityLevel::Critical, Codec::Binary, 20, true),
        (SecurityLevel::Standard, Codec::Json, 20, false),
        (SecurityLevel::Critical, Codec::Binary, 0, false),
    ];
    for (level, codec, events, streams) in cases {
        let workload = Workload {
            codec,
            streams,
            ..workload(level, events)
        };
        let plan = Plan {
            pace: Pace::Closed {
                window: 256,
                batch: 8,
            },
            duration: Duration::from_millis(700),
            warmup: Duration::from_millis(100),
        };
        let lanes = Lanes { count: 4, run: 8 };
        let made = Generated::start(workload, &setup.credentials, lanes, 2, Framing::Bare)
            .expect("generators");
        let figures = run_inproc(
            setup.config.clone(),
            mcp_perf::harness::Messages::Made(made),
            &plan,
        )
        .expect("run");
        assert!(figures.answered > 0, "{level:?} {codec:?}: {figures:?}");
        assert_eq!(figures.answered, figures.sent, "{level:?} {codec:?}");
        assert_eq!(figures.unanswered, 0, "{level:?} {codec:?}");
        assert!(
            figures.errors.is_empty(),
            "{level:?} {codec:?}: {:?}",
            figures.errors
        );
        assert!(figures.sender_cpu_share.is_some());
    }
    // Over TLS, framed by the generators.
    let lanes = Lanes { count: 2, run: 1 };
    let made = Generated::start(
        workload(SecurityLevel::Critical, 0),
        &setup.credentials,
        lanes,
        1,
        Framing::Frame,
    )
    .expect("generators");
    let plan = Plan {
        pace: Pace::Closed {
            window: 128,
            batch: 1,
        },
        duration: Duration::from_millis(700),
        warmup: Duration::from_millis(100),
    };
    let figures = run_net(
        &NetTarget::Own { tls: true },
        setup.config.clone(),
        &setup.credentials,
        mcp_perf::harness::Messages::Made(made),
        &plan,
        2,
    )
    .expect("run");
    assert!(figures.answered > 0, "{figures:?}");
    assert_eq!(figures.answered, figures.sent);
    assert!(figures.errors.is_empty(), "{:?}", figures.errors);
}
