//! Kafka → windows throughput, against the limit: a bare rdkafka consumer
//! draining the same topic in the same run. Needs a Kafka-protocol broker on
//! 127.0.0.1:9092 (`scripts/services.sh start` starts tansu); without one it
//! says so and exits.
//!
//! Run: `scripts/services.sh start && taskset -c 0 cargo bench --bench kafka`
//! (`BENCH_RECORDS` to change the count, default 1,000,000; 3 partitions;
//! `BENCH_ROUNDS` alternating rounds, default 3, medians compared).
//!
//! Two limits: the rdkafka crate's consumer, one `poll` per record (what a
//! plain rdkafka user gets), and a bare consumer taking each partition's
//! records in batches the way Vane does (`rd_kafka_consume_batch_queue`).
//! Each side is timed from its first record to its last (the group join is
//! not counted), reading the topic from the start in its own consumer group.
//!
//! Every round runs in a fresh process of its own (this binary again),
//! which first reads the whole topic once untimed, then again timed: both
//! sides measured warm, as a long-running consumer is. (Measured in one
//! process taking turns, the bare consumer ran cold-speed after every Vane
//! round, 1.0–1.1 instead of 1.6 M records/s, which flattered Vane.)
//!
//! For profiling one side: `BENCH_TOPIC=name` reads a topic produced by an
//! earlier run (its name is printed; nothing is produced), and
//! `BENCH_SIDES=vane` (or `bare`, `bare-batch`, comma-separated) runs only
//! those sides.
//!
//! Scale-out: `BENCH_SIDES=scaleout BENCH_PARTITIONS=12` runs whole `vane
//! run` processes (the release binary), one and then two in one consumer
//! group, each round on a fresh group, and times each from its first
//! checkpointed record to the last (the group join apart).

use std::io;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vane::decode::{Format, Mapping};
use vane::generate::{TrafficSpec, generate};
use vane::pipeline::Pipeline;
use vane::sinks::JsonlFile;
use vane::sources::KafkaSource;
use vane::window::WindowConfig;

const BROKER: &str = "127.0.0.1:9092";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    if let Ok(side) = std::env::var(CHILD) {
        run_child(&side);
        return;
    }
    if std::net::TcpStream::connect_timeout(
        &BROKER.parse().expect("address"),
        Duration::from_secs(1),
    )
    .is_err()
    {
        eprintln!("no Kafka broker on {BROKER}: start one with scripts/services.sh start");
        return;
    }
    let env_num = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env_num("BENCH_RECORDS", 1_000_000);
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let partitions = env_num("BENCH_PARTITIONS", 3).clamp(1, 1024) as i32;
    let (topic, bytes) = match std::env::var("BENCH_TOPIC") {
        Ok(t) => (t, 0),
        Err(_) => {
            let t = format!("bench-{}", std::process::id());
            let bytes = produce(&t, n, partitions);
            (t, bytes)
        }
    };
    let sides = std::env::var("BENCH_SIDES").unwrap_or_else(|_| "bare,bare-batch,vane".into());
    println!(
        "kafka bench: {n} records, {:.0} MB, {partitions} partitions, topic {topic}, {rounds} rounds (each side in turn, fresh consumer group each time)",
        bytes as f64 / 1e6
    );
    if sides == "scaleout" {
        scaleout(&topic, n, rounds);
        return;
    }
    let rate = |s: f64| n as f64 / s.max(1e-9);
    // Alternating rounds, medians compared: one side's slow moment (the
    // broker, the VM) does not decide the ratio.
    let (mut bare, mut bare_batch, mut vane) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Fresh groups every time, so the topic is read from its start.
        let group = |side: &str| format!("{topic}-{side}-{}-{round}", std::process::id());
        if sides.split(',').any(|s| s == "bare") {
            let (s, _, _) = in_child("bare", &topic, &group("bare"), n);
            println!(
                "  round {round}: bare rdkafka consumer      {s:>7.3} s  {:>10.0} records/s",
                rate(s)
            );
            bare.push(s);
        }
        if sides.contains("bare-batch") {
            let (s, _, _) = in_child("bare-batch", &topic, &group("bare-batch"), n);
            println!(
                "  round {round}: bare batch consumer       {s:>7.3} s  {:>10.0} records/s",
                rate(s)
            );
            bare_batch.push(s);
        }
        if sides.contains("vane") {
            let (s, pipeline_s, chunks) = in_child("vane", &topic, &group("vane"), n);
            println!(
                "  round {round}: vane source+decode+window  {s:>7.3} s  {:>10.0} records/s  (decode + windows {pipeline_s:.3} s; {:.1} records per chunk)",
                rate(s),
                n as f64 / chunks.max(1) as f64
            );
            vane.push(s);
        }
    }
    let vane_median = median(&mut vane);
    for (name, limit) in [("bare", &mut bare), ("bare batch", &mut bare_batch)] {
        if let (Some(b), Some(v)) = (median(limit), vane_median) {
            println!(
                "median: {name} {:.0} records/s, vane {:.0} records/s: vane at {:.0}% of {name}",
                rate(b),
                rate(v),
                rate(v) / rate(b) * 100.0
            );
        }
        // Best against best: what each side does when nothing else gets in
        // its way (a round's slow moments come from the VM and the broker).
        if let (Some(b), Some(v)) = (limit.first(), vane.first()) {
            println!(
                "best:   {name} {:.0} records/s, vane {:.0} records/s: vane at {:.0}% of {name}",
                rate(*b),
                rate(*v),
                rate(*v) / rate(*b) * 100.0
            );
        }
    }
}

/// Set in a child process: the side it runs (with `BENCH_TOPIC`,
/// `BENCH_GROUP` and `BENCH_RECORDS`).
const CHILD: &str = "BENCH_CHILD";

/// One round of one side, in a fresh process: (seconds, of which in decode
/// + windows, chunks).
fn in_child(side: &str, topic: &str, group: &str, n: usize) -> (f64, f64, usize) {
    let exe = std::env::current_exe().expect("this bench's path");
    let out = std::process::Command::new(exe)
        .env(CHILD, side)
        .env("BENCH_TOPIC", topic)
        .env("BENCH_GROUP", group)
        .env("BENCH_RECORDS", n.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run a round");
    assert!(out.status.success(), "the {side} round failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("round: "))
        .expect("the round's result")
        .split(' ')
        .map(|f| f.parse().expect("a number"))
        .collect();
    (fields[0], fields[1], fields[2] as usize)
}

/// The child's side: runs one round, prints `round: seconds pipeline_s chunks`.
fn run_child(side: &str) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the parent"));
    let (topic, group) = (var("BENCH_TOPIC"), var("BENCH_GROUP"));
    let n: usize = var("BENCH_RECORDS").parse().expect("BENCH_RECORDS");
    let run = |group: &str| match side {
        "bare" => (run_bare(&topic, group, n), 0.0, 0),
        "bare-batch" => (run_bare_batch(&topic, group, n), 0.0, 0),
        _ => run_vane(&topic, group, n),
    };
    // A first pass, not timed, unless BENCH_WARM=0: a long-running consumer
    // reuses heap pages librdkafka already touched, a fresh process faults
    // them in (measured: the bare consumer reads 1.0 M records/s cold, 1.6 M
    // warm; Vane 0.9 M either way).
    if std::env::var("BENCH_WARM").as_deref() != Ok("0") {
        run(&format!("{group}-warm-up"));
    }
    let (s, pipeline_s, chunks) = run(&group);
    println!("round: {s} {pipeline_s} {chunks}");
}

fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

/// The limit: a consumer that only counts records. Seconds from its first
/// record to its last.
fn run_bare(topic: &str, group: &str, n: usize) -> f64 {
    let mut bare_cfg = config(group);
    for kv in std::env::var("BENCH_BARE_OPTS")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = kv.split_once('=') {
            bare_cfg.set(k, v);
        }
    }
    let bare: BaseConsumer = bare_cfg.create().expect("consumer");
    bare.subscribe(&[topic]).expect("subscribe");
    let (mut seen, mut first) = (0usize, None);
    let mut sum = 0usize;
    while seen < n {
        if let Some(Ok(m)) = bare.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            sum += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    std::hint::black_box(sum);
    first.map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// A bare consumer taking records in batches (`rd_kafka_consume_batch_queue`,
/// which the rdkafka crate does not wrap), as Vane's source does: every
/// assigned partition forwarded to one queue of its own, drained up to 256
/// records at a time, the consumer's queue polled for the group's events.
fn run_bare_batch(topic: &str, group: &str, n: usize) -> f64 {
    use rdkafka::bindings as rd;
    let bare: BaseConsumer = config(group).create().expect("consumer");
    bare.subscribe(&[topic]).expect("subscribe");
    let rk = bare.client().native_ptr();
    // SAFETY (every block below): `rk` is live while `bare` is, the queue
    // is destroyed before it, and each message the batch call hands over is
    // destroyed once.
    let queue = unsafe { rd::rd_kafka_queue_new(rk) };
    assert!(!queue.is_null(), "a queue");
    let (mut seen, mut first, mut routed) = (0usize, None, false);
    let mut sum = 0usize;
    let mut batch = [std::ptr::null_mut::<rd::rd_kafka_message_t>(); 256];
    while seen < n {
        // Records fetched before the partitions were forwarded come here.
        if let Some(Ok(m)) = bare.poll(Duration::ZERO) {
            first.get_or_insert_with(Instant::now);
            sum += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
            continue;
        }
        if !routed {
            let assigned = bare.assignment().expect("assignment");
            for e in assigned.elements() {
                let t = std::ffi::CString::new(e.topic()).expect("topic");
                unsafe {
                    let part = rd::rd_kafka_queue_get_partition(rk, t.as_ptr(), e.partition());
                    if !part.is_null() {
                        rd::rd_kafka_queue_forward(part, queue);
                        rd::rd_kafka_queue_destroy(part);
                        routed = true;
                    }
                }
            }
            if !routed {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let k = unsafe { rd::rd_kafka_consume_batch_queue(queue, 100, batch.as_mut_ptr(), 256) };
        for &m in &batch[..usize::try_from(k).unwrap_or(0)] {
            first.get_or_insert_with(Instant::now);
            unsafe {
                sum += (*m).len;
                rd::rd_kafka_message_destroy(m);
            }
            seen += 1;
        }
    }
    unsafe { rd::rd_kafka_queue_destroy(queue) };
    std::hint::black_box(sum);
    first.map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// Vane: the Kafka source feeding decode + windows (one clock per
/// partition). Seconds from the first record to the last, of which in
/// decode + windows, and the chunks handed over.
fn run_vane(topic: &str, group: &str, n: usize) -> (f64, f64, usize) {
    let mut source = KafkaSource::new(
        BROKER,
        group,
        &[topic.to_string()],
        None,
        // As for the bare consumers (it only shortens the group join: tansu
        // holds a new group's first join for half the session timeout).
        &std::iter::once(("session.timeout.ms".to_string(), "6000".to_string()))
            .chain(
                std::env::var("BENCH_OPTS")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .collect(),
        // One record per chunk with BENCH_NOBATCH (what app-log sources do).
        std::env::var_os("BENCH_NOBATCH").is_none(),
    )
    .expect("kafka source");
    let mut pipeline = Pipeline::new(
        WindowConfig::default(),
        JsonlFile::writer(io::sink()),
        JsonlFile::writer(io::sink()),
    );
    let idx = pipeline.add_source(Format::Gorouter, Mapping::new());
    let (mut seen, mut first, mut chunks) = (0usize, None, 0usize);
    let nopipe = std::env::var_os("BENCH_NOPIPE").is_some();
    let mut pipeline_s = 0.0;
    while seen < n {
        // One consumer in a fresh group: its assignment needs no handoff,
        // but the source reads nothing until the change is taken.
        source.take_rebalances();
        match source.poll_timeout(Duration::from_millis(100)) {
            Ok(Some(chunk)) => {
                first.get_or_insert_with(Instant::now);
                chunks += 1;
                let clock = pipeline.clock_for(idx, &chunk.source);
                if nopipe {
                    seen += memchr_count(&chunk.data);
                } else {
                    let t = Instant::now();
                    pipeline
                        .process_on_clock(idx, clock, &chunk)
                        .expect("pipeline");
                    pipeline_s += t.elapsed().as_secs_f64();
                    // Every record is one line: the pipeline counted them.
                    seen = (pipeline.core.counts.lines + pipeline.core.counts.blank) as usize;
                }
                source.recycle(chunk);
            }
            Ok(None) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let vane_s = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    pipeline.finish().expect("finish");
    assert!(
        nopipe || pipeline.core.counts.decoded as usize == n,
        "every record decoded"
    );
    assert_eq!(pipeline.core.counts.late, 0, "no record late");
    (vane_s, pipeline_s, chunks)
}

fn config(group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", BROKER)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000");
    c
}

/// Creates the topic and produces `n` gorouter lines keyed by app.
fn produce(topic: &str, n: usize, partitions: i32) -> usize {
    let spec = TrafficSpec {
        format: Format::Gorouter,
        lines: n as u64,
        apps: 200,
        instances: 2_000,
        rps: 20_000.0,
        seed: 42,
        jitter_ms: 0,
        ..TrafficSpec::default()
    };
    let mut buf = Vec::with_capacity(n * 600);
    generate(&spec, &mut buf).expect("generate");
    let text = String::from_utf8(buf).expect("utf-8");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .expect("admin");
    rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("create topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    for line in text.lines() {
        let key = line
            .find("app_id:\"")
            .map(|i| &line[i + 8..i + 44])
            .unwrap_or_default();
        let mut rec = BaseRecord::to(topic).key(key).payload(line);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(20));
                    rec = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    text.len()
}

/// Records in a chunk: one line each.
fn memchr_count(data: &[u8]) -> usize {
    data.iter().filter(|&&b| b == b'\n').count()
}

/// One and two `vane run` processes in turn, `rounds` times each.
fn scaleout(topic: &str, n: usize, rounds: usize) {
    let rate = |s: f64| n as f64 / s.max(1e-9);
    let mut by_count: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (i, processes) in [1usize, 2].into_iter().enumerate() {
            let group = format!(
                "{topic}-scaleout-{}-{round}-{processes}",
                std::process::id()
            );
            let (join, s) = run_processes(topic, &group, n, processes);
            println!(
                "  round {round}: {processes} vane run process(es)  {s:>7.3} s  {:>10.0} records/s  (group join {join:.1} s, not counted)",
                rate(s)
            );
            by_count[i].push(s);
        }
    }
    let [mut one, mut two] = by_count;
    if let (Some(a), Some(b)) = (median(&mut one), median(&mut two)) {
        println!(
            "median: one process {:.0} records/s, two {:.0} records/s: {:.2}x",
            rate(a),
            rate(b),
            a / b
        );
    }
}

/// Runs `processes` `vane run`s in one group until their checkpoints hold
/// every record. Returns (seconds to the first checkpointed record, seconds
/// from then to the last).
fn run_processes(topic: &str, group: &str, n: usize, processes: usize) -> (f64, f64) {
    let root = std::env::temp_dir().join(group);
    let mut children = Vec::new();
    let mut checkpoints = Vec::new();
    for p in 0..processes {
        let dir = root.join(format!("p{p}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let cfg = dir.join("vane.toml");
        std::fs::write(
            &cfg,
            format!(
                "data_dir = \"{}\"\n[[sources]]\ntype = \"kafka\"\nbrokers = \"{BROKER}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\nformat = \"gorouter\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n[run]\npoll_interval = \"20ms\"\ncheckpoint_interval = \"100ms\"\n",
                dir.join("data").display()
            ),
        )
        .expect("config");
        checkpoints.push(dir.join("data/checkpoint.json"));
        children.push(
            std::process::Command::new(env!("CARGO_BIN_EXE_vane"))
                .args(["run", "--config"])
                .arg(&cfg)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("vane run"),
        );
    }
    let lines = |path: &std::path::Path| -> u64 {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["counts"]["lines"].as_u64())
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut first = None;
    let deadline = started + Duration::from_secs(600);
    loop {
        let total: u64 = checkpoints.iter().map(|c| lines(c)).sum();
        if total > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if total >= n as u64 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = started.elapsed();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&root);
    let first = first.unwrap_or(all);
    (first.as_secs_f64(), (all - first).as_secs_f64())
}
