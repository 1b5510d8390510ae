//! Audit lines and their collapsing.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{AuditEvent, AuditKind, Collapser, MAX_DISTINCT_PER_INTERVAL};
use crate::audit::collapse::Taken;
use crate::error::Code;

const SECOND: i128 = 1_000_000_000;
const T0: i128 = 1_796_000_000 * SECOND;

fn bad_token(n: u64, peer: u8) -> AuditEvent {
    AuditEvent {
        peer: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, peer))),
        message_id: Some(format!("m-{n}").into()),
        command: Some("demo.echo".into()),
        ..AuditEvent::refused(
            T0 + n as i128,
            Code::AuthenticationFailed,
            "token signature invalid",
        )
    }
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_refusal_is_one_json_line_with_its_fields() {
    let mut out = Vec::new();
    let mut event = bad_token(7, 1);
    event.principal = Some("ali\"ce".into());
    event.write_line(&mut out, 1, None);
    assert!(out.ends_with(b"}\n"));
    let [line] = lines(&out).try_into().unwrap();
    assert_eq!(line["event"], "refused");
    assert_eq!(line["code"], "authentication_failed");
    assert_eq!(line["principal"], "ali\"ce");
    assert_eq!(line["peer"], "10.0.0.1");
    assert_eq!(line["message_id"], "m-7");
    assert_eq!(line["command"], "demo.echo");
    assert_eq!(line["detail"], "token signature invalid");
    assert_eq!(line["count"], 1);
    assert!(line["time"].as_str().unwrap().starts_with("2026-"));
}

#[test]
fn a_flood_from_one_peer_is_two_lines_an_interval() {
    let mut collapser = Collapser::new(Duration::from_secs(10));
    let mut out = Vec::new();
    let mut taken = [0u64; 3];
    for n in 0..100_000 {
        match collapser.take(bad_token(n, 1), T0, &mut out) {
            Taken::Written => taken[0] += 1,
            Taken::Collapsed => taken[1] += 1,
            Taken::Dropped => taken[2] += 1,
        }
    }
    // Another peer's refusal is a line of its own.
    collapser.take(bad_token(0, 2), T0, &mut out);
    assert_eq!(taken, [1, 99_999, 0]);
    assert_eq!(lines(&out).len(), 2);
    // Not yet at the interval's end; then the count.
    assert_eq!(collapser.tick(T0 + 9 * SECOND, &mut out), 0);
    assert_eq!(collapser.tick(T0 + 10 * SECOND, &mut out), 1);
    let all = lines(&out);
    let collapsed = &all[2];
    assert_eq!(collapsed["count"], 99_999);
    assert_eq!(collapsed["message_id"], "m-99999");
    assert!(collapsed["until"].is_string());
    // The next interval starts afresh.
    assert_eq!(
        collapser.take(bad_token(1, 1), T0 + 11 * SECOND, &mut out),
        Taken::Written
    );
}

#[test]
fn distinct_refusals_past_the_bound_are_dropped_and_other_events_always_written() {
    let mut collapser = Collapser::new(Duration::from_secs(10));
    let mut out = Vec::new();
    for n in 0..MAX_DISTINCT_PER_INTERVAL {
        let mut event = bad_token(n as u64, 1);
        event.principal = Some(format!("p{n}").into());
        assert_eq!(collapser.take(event, T0, &mut out), Taken::Written);
    }
    let mut one_more = bad_token(0, 1);
    one_more.principal = Some("late".into());
    assert_eq!(collapser.take(one_more, T0, &mut out), Taken::Dropped);
    let reload = AuditEvent::note(T0, AuditKind::Reload, "reloaded; keys: jwt k1 active");
    assert_eq!(collapser.take(reload, T0, &mut out), Taken::Written);
    let all = lines(&out);
    assert_eq!(all.len(), MAX_DISTINCT_PER_INTERVAL + 1);
    assert_eq!(all.last().unwrap()["event"], "reload");
    assert!(all.last().unwrap().get("code").is_none());
}
