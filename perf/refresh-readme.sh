#!/usr/bin/env bash
# Re-measures every row of the results table in perf/README.md on this
# machine (about 12 minutes; nothing else should run meanwhile). Each run
# writes its own row through `mcp-bench --readme`.
set -euo pipefail
cd "$(dirname "$0")/.."
# With the NATS mode (its rows need Debian's nats-server).
cargo build --release -q -p mcp-perf --features nats
bench=target/release/mcp-bench
readme=perf/README.md
# A row whose run misses a seed budget is still written (the table shows
# the figures); the script reports the miss and goes on to the next row.
row() {
  label=$1; shift; echo "== $label"
  "$bench" --readme "$readme" --label "$label" "$@" || echo "== $label: exit $? (a budget miss)"
}

row "inproc Standard 10k msg/s" --seed-budgets
# The same with a sender that spins until each send is due: the host's
# timer latency (see pacing-floor) no longer adds to the latency.
row "inproc Standard 10k msg/s, spinning sender" --spin --seed-budgets
row "tls Standard 10k msg/s, 4 conns" --mode tls --seed-budgets
# Sustained: messages made while the run goes (on their own threads, on
# the same two cores), so that the run is as long as asked and the figure
# one a user can keep. Every level, beside the baseline made the same way.
for level in standard high critical; do
  row "inproc $level max, sustained" --sustained --max --duration 10 \
    --level "$level" --compare baseline --repeat 3
done
# Bursts: a pool of messages made before the clock starts, sent as fast as
# they are answered until it runs out (3M messages: about 2 s at
# Standard). Their load generator costs nothing during the run, so they
# show the engine alone, for a while.
for topology in sharded staged; do
  for level in standard high critical; do
    row "burst: inproc $level max, $topology" --max --duration 3 --pool 3000000 \
      --level "$level" --topology "$topology" --compare baseline --repeat 3
  done
done
# The closed loop hands messages over 32 at a time (`Engine::submit_batch`);
# this row submits each alone, as a caller without batches would.
row "burst: inproc standard max, sharded, batch 1" --max --duration 3 --pool 3000000 \
  --level standard --batch 1 --compare baseline --repeat 3
row "tcp Standard max, 64 conns, sustained" --mode tcp --max --connections 64 --duration 5 --sustained
row "tls Standard max, 64 conns, sustained" --mode tls --max --connections 64 --duration 5 --sustained
# Through a NATS broker (a nats-server started on a free port) to one
# engine and to three in a queue group, all in this process: on two cores
# these show what the broker's hop costs, not what more machines would add.
for engines in 1 3; do
  row "nats Standard 10k msg/s, $engines engine(s)" --mode nats --engines "$engines"
  row "nats Standard max, $engines engine(s), 4 conns, sustained" --mode nats --engines "$engines" \
    --max --duration 5 --sustained
done
row "tls Standard max, 4 conns, sustained" --mode tls --max --duration 5 --sustained
