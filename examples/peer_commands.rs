//! One engine sends commands to another (`Engine::send_command`) and waits
//! for each answer, matched by correlation id.
//!
//! ```text
//! cargo run --release --example peer_commands
//! ```
//!
//! The two engines stand for two processes; a "link" stands for the
//! connection between them. A sink must never block an engine thread, and
//! must not call back into an engine from inside its call: each link is a
//! channel and a thread that submits what comes through it to the other
//! side, as a connection's I/O thread would.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mcp_engine::codec::Codec;
use mcp_engine::engine::{Answer, Engine, EngineBuilder, Reply, Request, SinkId, Submission};
use mcp_engine::{Code, Config, Error, Message, MessageType, RawJson, SecurityLevel};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The tag of the one connection between the two engines, on each side.
const LINK: u64 = 1;

/// An engine that takes trusted `Low` messages for the `inventory` and
/// `orders` commands.
fn config() -> Config {
    let mut config = Config::default();
    config.allow_anonymous(["inventory:*"]);
    config
}

/// `inventory.count`: how many of `args.item` are in stock.
fn count(request: &Request<'_>) -> Result<Answer, Error> {
    let item = request
        .args()
        .and_then(|args| args.get("item"))
        .and_then(|item| item.as_str())
        .ok_or_else(|| Error::new(Code::ValidationFailed, "inventory.count needs args.item"))?;
    let stock = match item {
        "bolt" => 120,
        "nut" => 75,
        _ => return Err(Error::new(Code::ValidationFailed, "no such item")),
    };
    Ok(Answer::Result(RawJson::parse(&format!(
        r#"{{"item":"{item}","stock":{stock}}}"#
    ))?))
}

/// What one side sends the other: a frame body.
type Frame = (Codec, Vec<u8>);

/// Delivers what the other side sends on the link into `to`, as a
/// connection's I/O thread would. `to_sink` is where `to` answers on this
/// link. The link holds `to` weakly: once the program lets go of both
/// engines, their sinks (which feed the links) go with them, and the links
/// end.
fn link(to: &Arc<Engine>, to_sink: SinkId, frames: mpsc::Receiver<Frame>) -> JoinHandle<()> {
    let to = Arc::downgrade(to);
    std::thread::spawn(move || {
        for (codec, body) in frames {
            let Some(to) = to.upgrade() else { return };
            let submission = Submission {
                sink: to_sink,
                tag: LINK,
                peer: LOCAL,
                key: LINK,
                codec,
                body,
            };
            // A refusal is answered through the sink like any reply.
            let _ = to.submit(submission);
        }
    })
}

/// A sink that puts every envelope the engine writes on `frames`.
fn sending_to(frames: mpsc::Sender<Frame>) -> impl Fn(Reply<'_>) + Send + Sync + 'static {
    let frames = Mutex::new(frames);
    move |reply: Reply<'_>| {
        // Outcomes without an envelope (an absorbed answer) send nothing.
        if !reply.body.is_empty()
            && let Ok(frames) = frames.lock()
        {
            let _ = frames.send((reply.codec, reply.body.to_vec()));
        }
    }
}

fn run() -> Result<(), Error> {
    // "orders" asks, "inventory" answers.
    let orders = Arc::new(EngineBuilder::new(config()).start()?);
    let inventory = Arc::new(
        EngineBuilder::new(config())
            .command("inventory.count", count)
            .start()?,
    );
    let (to_inventory, inventory_inbox) = mpsc::channel();
    let (to_orders, orders_inbox) = mpsc::channel();
    let orders_out = orders.register_sink(sending_to(to_inventory));
    let inventory_out = inventory.register_sink(sending_to(to_orders));
    let links = [
        link(&inventory, inventory_out, inventory_inbox),
        link(&orders, orders_out, orders_inbox),
    ];

    let mut failures = Vec::new();
    for (n, item) in ["bolt", "nut", "washer"].into_iter().enumerate() {
        let payload = RawJson::parse(&format!(
            r#"{{"command":"inventory.count","args":{{"item":"{item}"}}}}"#
        ))?;
        let command = Message::new(
            format!("order-{n}"),
            MessageType::Command,
            SecurityLevel::Low,
            payload,
        );
        // The command goes out on the link's sink and tag; its answer must
        // come back on the same ones.
        let pending = orders.send_command(
            orders_out,
            LINK,
            Codec::Json,
            &command,
            Some(Duration::from_secs(5)),
        )?;
        let answer = pending.wait()?;
        println!("{item}: {:?} {}", answer.kind, answer.payload.as_str());
        let expected = if item == "washer" {
            MessageType::Error
        } else {
            MessageType::Response
        };
        if answer.kind != expected {
            failures.push(item);
        }
    }

    let (sent, answered) = (orders.metrics(), inventory.metrics());
    println!(
        "orders: {} answers taken, {} unmatched; inventory: {} responses, {} errors",
        sent.accepted,
        sent.unmatched_replies,
        answered.responses,
        answered.total_errors()
    );
    orders.shutdown();
    inventory.shutdown();
    // The links end when both engines (and their sinks) are gone.
    drop(orders);
    drop(inventory);
    for link in links {
        let _ = link.join();
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            Code::InternalError,
            format!("unexpected answers for {failures:?}"),
        ))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_commands: {e}");
            ExitCode::FAILURE
        }
    }
}
