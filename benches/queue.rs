//! Queue hop: one value from a producer thread to a consumer thread through
//! our ring, `crossbeam::queue::ArrayQueue` and `flume::bounded`, all of
//! capacity 1024, both sides yielding when they must wait (docs/tuning.md:
//! yielding beats spinning on these two cores). Also the uncontended
//! push-then-pop cost on one thread.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;
use mcp_engine::engine::test_support::Ring;

const CAPACITY: usize = 1024;

/// The three queues behind one interface.
trait Queue: Send + Sync + 'static {
    fn push(&self, value: u64) -> bool;
    fn pop(&self) -> Option<u64>;
}

impl Queue for Ring<u64> {
    fn push(&self, value: u64) -> bool {
        Ring::push(self, value).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        Ring::pop(self)
    }
}

impl Queue for ArrayQueue<u64> {
    fn push(&self, value: u64) -> bool {
        ArrayQueue::push(self, value).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        ArrayQueue::pop(self)
    }
}

struct Flume(flume::Sender<u64>, flume::Receiver<u64>);

impl Queue for Flume {
    fn push(&self, value: u64) -> bool {
        self.0.try_send(value).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

/// Time for `n` values to cross from a producer thread to this one.
fn hop(queue: Arc<dyn Queue>, n: u64) -> Duration {
    let producer = {
        let queue = Arc::clone(&queue);
        std::thread::spawn(move || {
            for value in 0..n {
                while !queue.push(value) {
                    std::thread::yield_now();
                }
            }
        })
    };
    let start = Instant::now();
    let mut received = 0;
    while received < n {
        match queue.pop() {
            Some(value) => {
                black_box(value);
                received += 1;
            }
            None => std::thread::yield_now(),
        }
    }
    let elapsed = start.elapsed();
    producer.join().unwrap();
    elapsed
}

/// Makes a fresh, empty queue.
type MakeQueue = Box<dyn Fn() -> Arc<dyn Queue>>;

fn queues() -> Vec<(&'static str, MakeQueue)> {
    vec![
        (
            "ring",
            Box::new(|| Arc::new(Ring::<u64>::new(CAPACITY)) as Arc<dyn Queue>),
        ),
        (
            "array_queue",
            Box::new(|| Arc::new(ArrayQueue::<u64>::new(CAPACITY)) as Arc<dyn Queue>),
        ),
        (
            "flume",
            Box::new(|| {
                let (tx, rx) = flume::bounded(CAPACITY);
                Arc::new(Flume(tx, rx)) as Arc<dyn Queue>
            }),
        ),
    ]
}

fn queue_hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_hop");
    group.throughput(Throughput::Elements(1));
    for (name, make) in queues() {
        group.bench_function(BenchmarkId::new("cross_thread", name), |b| {
            b.iter_custom(|iters| hop(make(), iters))
        });
    }
    for (name, make) in queues() {
        let queue = make();
        group.bench_function(BenchmarkId::new("same_thread", name), |b| {
            b.iter(|| {
                queue.push(black_box(7));
                black_box(queue.pop())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, queue_hop);
criterion_main!(benches);
