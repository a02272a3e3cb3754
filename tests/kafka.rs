//! Kafka in, InfluxDB out, against real servers started by
//! scripts/services.sh: tansu (Kafka protocol) on 127.0.0.1:9092 and
//! VictoriaMetrics (InfluxDB v2 write API) on 127.0.0.1:8428. Totals read back
//! from the store equal totals counted from the produced records; Vane killed
//! (`kill -9`) again and again while it consumes still counts every record once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::store::{VM, expected, wait_until_stored};
use common::{vane, write_config};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const BROKER: &str = "127.0.0.1:9092";

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates `topic` with `partitions` and produces `lines`, keyed by app id.
fn produce(topic: &str, partitions: i32, text: &str) {
    let records: Vec<(&str, &str)> = text
        .lines()
        .map(|line| {
            let key = line
                .find("app_id:\"")
                .map(|i| &line[i + 8..i + 44])
                .unwrap_or_default();
            (key, line)
        })
        .collect();
    produce_keyed(topic, partitions, &records);
}

/// Creates `topic` with `partitions` and produces (key, value) records in order.
fn produce_keyed(topic: &str, partitions: i32, records: &[(&str, &str)]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    for (key, line) in records {
        send(&producer, topic, key, line);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

fn generate(dir: &Path, lines: &str, seed: &str) -> String {
    let path = dir.join("gen.log");
    let out = vane()
        .args([
            "generate",
            "--lines",
            lines,
            "--apps",
            "20",
            "--instances",
            "60",
            "--rps",
            "2000",
            "--seed",
            seed,
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::read_to_string(path).unwrap()
}

fn config(dir: &Path, topic: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[[sources]]\ntype = \"kafka\"\nbrokers = \"{BROKER}\"\ngroup = \"{}\"\ntopics = [\"{topic}\"]\nformat = \"gorouter\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n[run]\npoll_interval = \"20ms\"\nidle_timeout = \"2s\"\nstats_interval = \"1s\"\n[influxdb]\nurl = \"{VM}\"\norg = \"vane\"\nbucket = \"kafka\"\n{}",
            unique("group"),
            common::store::influx_tags()
        ),
    )
}

/// `[run]` of members killed mid-stream: checkpoints twice a second.
const FAST_CHECKPOINTS: &str = "idle_timeout = \"2s\"\ncheckpoint_interval = \"500ms\"\n";

/// Records counted in the checkpoint under `dir` (0 before the first).
fn checkpointed_lines(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("data/checkpoint.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["counts"]["lines"].as_u64())
        .unwrap_or(0)
}

/// A member's configuration in `dir`: the topic in `group`, gorouter
/// lines, VictoriaMetrics as the store; `run` the `[run]` settings, `extra`
/// appended (or, starting with `rules`, prepended).
fn member_config(dir: &Path, group: &str, topic: &str, run: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let (head, tail) = if extra.starts_with("rules") {
        (extra, "")
    } else {
        ("", extra)
    };
    write_config(
        dir,
        &format!(
            "{head}[[sources]]\ntype = \"kafka\"\nbrokers = \"{BROKER}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\nformat = \"gorouter\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n[run]\npoll_interval = \"20ms\"\n{run}[influxdb]\nurl = \"{VM}\"\norg = \"vane\"\nbucket = \"kafka\"\n{}{tail}",
            common::store::influx_tags()
        ),
    )
}

/// "lines N decoded N late L ..." printed by `vane run` at its end.
fn summary(stderr: &[u8]) -> BTreeMap<String, u64> {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("lines "))
        .unwrap_or_else(|| panic!("no summary in {text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].parse().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn two_hundred_thousand_records_from_kafka_reach_the_store_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), "200000", "303");
    let want = expected(&text);
    let topic = unique("router");
    produce(&topic, 3, &text);
    let out = vane()
        .args(["run", "--exit-when-idle", "8s", "--config"])
        .arg(config(dir.path(), &topic))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out.stderr);
    let log = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    assert_eq!(
        s["lines"],
        200_000,
        "{s:?}; the log's end:\n{}",
        tail.join("\n")
    );
    assert_eq!(s["decoded"], 200_000, "{s:?}");
    assert_eq!(
        s["late"], 0,
        "a partition read behind the others holds the watermark: {s:?}"
    );
    assert_eq!(wait_until_stored(&want), want);
    // Consumer lag per partition, as a metric in the same store.
    let lag = common::store::get(&format!(
        "{VM}/api/v1/export?match[]=vane_kafka_lag{{run=\"{}\"}}",
        common::store::run_tag()
    ));
    let partitions: std::collections::BTreeSet<String> = lag
        .lines()
        .filter(|l| l.contains(&topic))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(
                v["values"].as_array().unwrap().last().unwrap(),
                0,
                "caught up: {l}"
            );
            v["metric"]["partition"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(partitions.len(), 3, "{lag}");
}

#[test]
#[ignore = "needs services: scripts/test.sh"]
fn killed_again_and_again_while_consuming_every_record_counts_once() {
    // A backlog first, then the rest produced while runs come and go, so
    // that every run is killed with records still to read (a run reads
    // ~600k records/s: with everything produced up front, one whose first
    // checkpoint came late sometimes read the rest before its kill).
    const N: u64 = 240_000;
    const BACKLOG: usize = 40_000;
    const PACE: usize = 2_500;
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), &N.to_string(), "404");
    let want = expected(&text);
    let topic = unique("router-crash");
    let records = keyed(&text);
    let (backlog, rest) = records.split_at(BACKLOG);
    let backlog: Vec<(&str, &str)> = backlog
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    produce_keyed(&topic, 3, &backlog);
    let producer = {
        let (topic, rest) = (topic.clone(), rest.to_vec());
        std::thread::spawn(move || produce_paced(topic, rest, PACE))
    };
    let cfg = config(dir.path(), &topic);
    // Checkpoints often, so that kills land between them mid-stream.
    let body = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        body.replace("[run]\n", "[run]\ncheckpoint_interval = \"50ms\"\n"),
    )
    .unwrap();
    // Each run is killed a little after its first checkpoint that moved on
    // (the group join alone takes seconds, and longer while killed members'
    // sessions linger), at pseudo-random extra delays, until five runs were
    // killed in the middle of the stream.
    let checkpointed = || checkpointed_lines(dir.path());
    let mut seen = Vec::new();
    let mut last = 0;
    let mut rng = 0x9e37_79b9_u64;
    for i in 0..15 {
        if seen.iter().filter(|&&n| n > 0 && n < N).count() >= 5 || last >= N {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let extra_ms = rng % 80;
        let mut child = vane()
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while checkpointed() == last && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(extra_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        last = checkpointed();
        seen.push(last);
        eprintln!("killed run {i} {extra_ms} ms after it moved on: {last} records checkpointed");
    }
    assert!(
        seen.iter().filter(|&&n| n > 0 && n < N).count() >= 5,
        "five runs were killed in the middle of the stream: {seen:?}"
    );
    producer.join().unwrap();
    // Killed members stay in the group until their sessions time out: the
    // last run may wait that long for its partitions.
    let out = vane()
        .args(["run", "--exit-when-idle", "20s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out.stderr);
    let said = String::from_utf8_lossy(&out.stderr);
    let partitions: Vec<&str> = said
        .lines()
        .filter(|l| {
            ["assigned", "revoked", "taken over", "moved"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert_eq!(
        s["lines"], N,
        "every record counted once over all runs: {s:?}; the last run's partitions: {partitions:#?}"
    );
    assert_eq!(s["late"], 0, "{s:?}");
    let stored = wait_until_stored(&want);
    if stored != want {
        let windows = std::fs::read_to_string(dir.path().join("data/windows.jsonl")).unwrap();
        let diffs = common::store::differences(&windows);
        panic!(
            "store totals differ: {} windows differ, first: {:?}",
            diffs.len(),
            &diffs[..diffs.len().min(10)]
        );
    }
}

/// Two topics in one run, each with its decoder: access logs into windows
/// (InfluxDB), app logs one line per record, keyed `app/instance`, joined
/// back into events with their stack traces (Elasticsearch).
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn access_logs_and_app_logs_from_two_topics() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), "20000", "31");
    let want = expected(&text);
    let access = unique("access");
    produce(&access, 2, &text);
    let logs = unique("applogs");
    let mut records = Vec::new();
    let mut heads = 0;
    let mut io_traces = 0;
    let files: Vec<(String, String)> = [
        (
            "kafka/kafka0",
            "app-logs/elastic_kafka0_server.log.2016-12-19-20",
        ),
        (
            "kafka/kafka1",
            "app-logs/elastic_kafka1_server.log.2016-12-19-20",
        ),
        (
            "kafka/controller0",
            "app-logs/elastic_kafka0_controller.log.2016-12-19-18",
        ),
    ]
    .iter()
    .map(|(k, rel)| {
        (
            k.to_string(),
            std::fs::read_to_string(common::shared_data(rel)).unwrap(),
        )
    })
    .collect();
    for (key, text) in &files {
        let lines: Vec<&str> = text.lines().collect();
        heads += lines.iter().filter(|l| l.starts_with("[20")).count();
        io_traces += lines
            .windows(2)
            .filter(|w| w[0].starts_with("[20") && w[1].starts_with("java.io.IOException"))
            .count();
        records.extend(lines.iter().map(|l| (key.as_str(), *l)));
    }
    produce_keyed(&logs, 3, &records);
    let index = unique("t-kafka-logs").to_lowercase();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[sources]]\ntype = \"kafka\"\nbrokers = \"{BROKER}\"\ngroup = \"{g1}\"\ntopics = [\"{access}\"]\nformat = \"gorouter\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n\
[[sources]]\ntype = \"kafka\"\nbrokers = \"{BROKER}\"\ngroup = \"{g2}\"\ntopics = [\"{logs}\"]\nformat = \"app-log\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n\
[run]\npoll_interval = \"20ms\"\nidle_timeout = \"2s\"\nmultiline_timeout = \"1s\"\n[influxdb]\nurl = \"{VM}\"\norg = \"vane\"\nbucket = \"kafka\"\n{tags}\
[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\nindex_prefix = \"{index}\"\n",
            g1 = unique("group"),
            g2 = unique("group"),
            tags = common::store::influx_tags(),
        ),
    );
    let out = vane()
        .args(["run", "--exit-when-idle", "5s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(wait_until_stored(&want), want);
    let get = |q: &str| -> serde_json::Value {
        serde_json::from_str(&common::store::get(&format!(
            "http://127.0.0.1:9200/{index}/{q}"
        )))
        .unwrap()
    };
    assert_eq!(get("_count")["count"].as_u64().unwrap() as usize, heads);
    let traces = get("_search?size=0&q=error.type:%22java.io.IOException%22");
    assert_eq!(
        traces["hits"]["total"]["value"].as_u64().unwrap() as usize,
        io_traces
    );
    // Identity from the record key.
    let one = get("_search?size=1&q=service.node.name:kafka1");
    assert_eq!(
        one["hits"]["hits"][0]["_source"]["service"]["name"],
        "kafka"
    );
    assert!(one["hits"]["total"]["value"].as_u64().unwrap() > 0);
}

/// Two Vane processes in one consumer group split the partitions (and so the
/// apps, records being keyed by app): the first reads half the stream alone,
/// then a second joins (the group rebalances while the first holds open
/// windows), then the rest is produced. The store holds the same totals one
/// process would have written.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn two_processes_in_one_group_split_the_apps_and_total_the_same() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), &N.to_string(), "505");
    let want = expected(&text);
    let lines: Vec<&str> = text.lines().collect();
    let topic = unique("router-split");
    let (first, second) = lines.split_at(N / 2);
    produce(&topic, 4, &(first.join("\n") + "\n"));
    let group = unique("group");
    // No processing-time heartbeat: the pause between the halves is not
    // time passing in the stream.
    let cfg = |name: &str| {
        let run = "idle_timeout = \"1h\"\ncheckpoint_interval = \"200ms\"\n";
        member_config(&dir.path().join(name), &group, &topic, run, "")
    };
    let lines_of = |name: &str| checkpointed_lines(&dir.path().join(name));
    let spawn = |name: &str| {
        vane()
            .args(["run", "--exit-when-idle", "12s", "--config"])
            .arg(cfg(name))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("a");
    common::wait_for("the first process to read the first half", || {
        lines_of("a") >= (N / 2) as u64
    });
    let b = spawn("b");
    // The group rebalances when the second member joins.
    std::thread::sleep(Duration::from_secs(8));
    let second = second.join("\n") + "\n";
    let records: Vec<(&str, &str)> = second
        .lines()
        .map(|line| {
            let key = line
                .find("app_id:\"")
                .map(|i| &line[i + 8..i + 44])
                .unwrap_or_default();
            (key, line)
        })
        .collect();
    produce_more(&topic, &records);
    let out_a = a.wait_with_output().unwrap();
    let out_b = b.wait_with_output().unwrap();
    assert!(
        out_a.status.success(),
        "{}",
        String::from_utf8_lossy(&out_a.stderr)
    );
    assert!(
        out_b.status.success(),
        "{}",
        String::from_utf8_lossy(&out_b.stderr)
    );
    let (sa, sb) = (summary(&out_a.stderr), summary(&out_b.stderr));
    for (name, out) in [("a", &out_a), ("b", &out_b)] {
        for l in String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("kafka:"))
        {
            eprintln!("{name}: {l}");
        }
    }
    assert!(sb["lines"] > 0, "the second process read records: {sb:?}");
    assert_eq!(sa["late"] + sb["late"], 0, "{sa:?} {sb:?}");
    let stored = wait_until_stored(&want);
    if stored != want {
        let mut diffs = Vec::new();
        for name in ["a", "b"] {
            let w = std::fs::read_to_string(dir.path().join(name).join("data/windows.jsonl"))
                .unwrap_or_default();
            diffs.push(common::store::differences(&w).len());
        }
        panic!(
            "store totals differ: {stored:?} vs {want:?}; {sa:?} {sb:?}; windows differing per process {diffs:?}"
        );
    }
}

/// Sends one record, waiting while the producer's queue is full.
fn send(producer: &BaseProducer, topic: &str, key: &str, line: &str) {
    let mut record = BaseRecord::to(topic).key(key).payload(line);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((_, r)) => {
                // Queue full: let it drain.
                producer.poll(Duration::from_millis(10));
                record = r;
            }
        }
    }
    producer.poll(Duration::ZERO);
}

/// Produces more records to an existing topic.
fn produce_more(topic: &str, records: &[(&str, &str)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    for (key, line) in records {
        send(&producer, topic, key, line);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The Kafka source alone (batched, as for access logs): every record of
/// every partition handed over once and in offset order, one-line records
/// taken in batches, multi-line and empty ones in between; paused half-way,
/// nothing is handed over until it resumes, and nothing is lost.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn the_source_hands_over_every_record_once_in_partition_order() {
    use vane::sources::KafkaSource;
    let topic = unique("order");
    produce_keyed(&topic, 3, &[]);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut records = [0i64; 3];
    for i in 0..6_000 {
        let p = i % 3;
        let payload = match i % 97 {
            0 => String::new(),
            13 => format!("first {i}\nsecond {i}"),
            _ => format!("line {i}"),
        };
        want.entry(format!("{topic}/{p}"))
            .or_default()
            .extend(payload.lines().map(str::to_string));
        records[p as usize] += 1;
        let mut record = BaseRecord::<str, str>::to(&topic)
            .partition(p)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let options = BTreeMap::from([("session.timeout.ms".to_string(), "6000".to_string())]);
    let mut source = KafkaSource::new(
        BROKER,
        &unique("group"),
        std::slice::from_ref(&topic),
        None,
        &options,
        true,
    )
    .unwrap();
    let total: usize = want.values().map(Vec::len).sum();
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut seen, mut paused_once) = (0, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    // Past the last line, a while longer: a record handed over twice shows.
    let mut quiet_until = None;
    while quiet_until.is_none_or(|t| std::time::Instant::now() < t) {
        assert!(
            std::time::Instant::now() < deadline,
            "read {seen} of {total} lines"
        );
        source.take_rebalances();
        if seen > total / 3 && !paused_once {
            paused_once = true;
            source.set_paused(true);
            let until = std::time::Instant::now() + Duration::from_millis(500);
            while std::time::Instant::now() < until {
                source.take_rebalances();
                assert!(
                    source
                        .poll_timeout(Duration::from_millis(20))
                        .unwrap()
                        .is_none(),
                    "nothing is handed over while paused"
                );
            }
            source.set_paused(false);
        }
        if let Some(chunk) = source.poll_timeout(Duration::from_millis(50)).unwrap() {
            let text = std::str::from_utf8(&chunk.data).unwrap();
            let lines = got.entry(chunk.source.clone()).or_default();
            lines.extend(text.lines().map(str::to_string));
            seen += text.lines().count();
            source.recycle(chunk);
        }
        if seen >= total && quiet_until.is_none() {
            quiet_until = Some(std::time::Instant::now() + Duration::from_secs(1));
        }
    }
    assert!(paused_once);
    assert_eq!(got, want);
    for (p, n) in records.iter().enumerate() {
        assert_eq!(
            source.offsets().get(&format!("{topic}/{p}")),
            Some(n),
            "partition {p} read to its end"
        );
    }
}

/// (key, line) per generated line, keyed by app id as the router's logs are.
fn keyed(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let key = line
                .find("app_id:\"")
                .map(|i| &line[i + 8..i + 44])
                .unwrap_or_default();
            (key.to_string(), line.to_string())
        })
        .collect()
}

/// Produces `records` to an existing topic at `per_sec`, in batches every
/// 100 ms: traffic at the pace it happened (the generator's `--rps`).
fn produce_paced(topic: String, records: Vec<(String, String)>, per_sec: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let start = std::time::Instant::now();
    for (i, batch) in records.chunks(per_sec / 10).enumerate() {
        let due = start + Duration::from_millis(100 * i as u64);
        std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
        for (key, line) in batch {
            send(&producer, &topic, key, line);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The app rows of every `windows.jsonl` given, as (app, window end) →
/// requests. A window written by two members (the dead one's, past its
/// last checkpoint, and its successor's) must be written alike.
fn union_of_windows(files: &[PathBuf]) -> BTreeMap<(String, String), u64> {
    let (union, conflicts) = windows_of(files);
    assert!(
        conflicts.is_empty(),
        "written twice, differently: {conflicts:?}"
    );
    union
}

/// A window two files hold with different counts: (app, end), and each
/// file's (name, count).
type Conflict = ((String, String), (String, u64), (String, u64));

/// The union of app rows by (app, end), and the windows written differently.
fn windows_of(files: &[PathBuf]) -> (BTreeMap<(String, String), u64>, Vec<Conflict>) {
    let mut union: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if !v["instance"].is_null() {
                continue;
            }
            let key = (
                v["app"].as_str().unwrap().to_string(),
                v["end"].as_str().unwrap().to_string(),
            );
            let requests = v["requests"].as_u64().unwrap();
            match union.get(&key) {
                Some((before, other)) if *before != requests => conflicts.push((
                    key.clone(),
                    (other.clone(), *before),
                    (name.clone(), requests),
                )),
                Some(_) => {}
                None => {
                    union.insert(key, (requests, name.clone()));
                }
            }
        }
    }
    (
        union.into_iter().map(|(k, (n, _))| (k, n)).collect(),
        conflicts,
    )
}

/// Requests per app over the union of windows.
fn totals(union: &BTreeMap<(String, String), u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((app, _), n) in union {
        if *n > 0 {
            *out.entry(app.clone()).or_default() += n;
        }
    }
    out
}

/// Two members share a 6-partition topic produced at real-time pace; one
/// is killed (`kill -9`) mid-stream and never comes back. The survivor
/// takes its partitions over after the session timeout — long after its own
/// partitions' windows moved on — and rebuilds the dead member's open
/// windows from its committed offsets: no record late, every window exact
/// in the store and in the union of both members' JSON-lines files.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn a_member_killed_mid_stream_is_taken_over_without_loss() {
    const N: usize = 60_000;
    const RPS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), &N.to_string(), "606");
    let want = expected(&text);
    let topic = unique("router-takeover");
    produce_keyed(&topic, 6, &[]);
    let group = unique("group");
    // Every app scaled by one policy, at most one instance more per window:
    // its count climbs window by window, so a handover that forgot it
    // would show.
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("all.yaml"), CLIMBING_POLICY).unwrap();
    let port = common::free_port();
    let cfg = |name: &str| {
        let d = dir.path().join(name);
        member_config(
            &d,
            &group,
            &topic,
            FAST_CHECKPOINTS,
            &format!("rules = [\"{}\"]\n", rules.display()),
        );
        // The survivor serves its API: which partitions it owns.
        if name == "survivor" {
            let path = d.join("vane.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                &path,
                format!("{text}[api]\nlisten = \"127.0.0.1:{port}\"\n"),
            )
            .unwrap();
        }
        d.join("vane.toml")
    };
    let owned = || -> usize {
        let body = common::store::get(&format!("http://127.0.0.1:{port}/api/v1/partitions"));
        serde_json::from_str::<Vec<serde_json::Value>>(&body).map_or(0, |v| v.len())
    };
    let lines_of = |name: &str| checkpointed_lines(&dir.path().join(name));
    let spawn = |name: &str| {
        vane()
            .args(["run", "--exit-when-idle", "15s", "--config"])
            .arg(cfg(name))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let survivor = spawn("survivor");
    let mut victim = spawn("victim");
    // Both in the group before traffic starts: the split is settled.
    std::thread::sleep(Duration::from_secs(8));
    let producer = {
        let (topic, records) = (topic.clone(), keyed(&text));
        std::thread::spawn(move || produce_paced(topic, records, RPS))
    };
    common::wait_for("both members to checkpoint records", || {
        lines_of("survivor") > 0 && lines_of("victim") > 0
    });
    let before = owned();
    assert!(
        (1..6).contains(&before),
        "the survivor owns part of the topic: {before}"
    );
    // Past the first windows (closed, decided and checkpointed), before the end.
    std::thread::sleep(Duration::from_secs(16));
    victim.kill().unwrap(); // SIGKILL, mid-stream
    victim.wait().unwrap();
    let victim_lines = lines_of("victim");
    common::wait_for("the survivor to own every partition", || owned() == 6);
    let metrics = common::store::get(&format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("vane_kafka_partition_series{"))
            .count(),
        6,
        "{metrics}"
    );
    producer.join().unwrap();
    let out = survivor.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = summary(&out.stderr);
    eprintln!("victim checkpointed {victim_lines} lines; survivor: {s:?}");
    assert!(
        victim_lines > 0 && (victim_lines as usize) < N / 2,
        "the victim died mid-stream: {victim_lines}"
    );
    assert!(
        stderr.contains("partition taken over"),
        "the survivor took partitions over"
    );
    assert!(
        stderr.contains("decision state taken over"),
        "the victim's decision state came with its partitions: {stderr}"
    );
    assert_eq!(s["late"], 0, "{s:?}");
    let union = union_of_windows(&[
        dir.path().join("survivor/data/windows.jsonl"),
        dir.path().join("victim/data/windows.jsonl"),
    ]);
    assert_eq!(totals(&union), want, "the union of the JSON-lines files");
    let stored = wait_until_stored(&want);
    assert_eq!(stored, want, "the store");
    // One chain of decisions per app across both members: each starts from
    // the count the one before it (whoever took it) left, and a window
    // decided by both was decided alike.
    let handed = decision_chains(&[
        dir.path().join("victim/data/decisions.jsonl"),
        dir.path().join("survivor/data/decisions.jsonl"),
    ]);
    assert!(handed > 0, "some app was decided on by both members");
}

/// Every app's policy: one instance more per window at most, towards 5
/// requests/s per instance (the generated apps have about 100).
const CLIMBING_POLICY: &str = "apiVersion: vane/v1
kind: ScalingPolicy
metadata:
  name: climbing
spec:
  selector:
    names: [\"*\"]
  min: 1
  max: 50
  algorithm: target-tracking
  targets:
    - metric: rps_per_instance
      value: 5
  behavior:
    scaleUp:
      stabilization: 0s
      maxInstances: 1
      period: 10s
    scaleDown:
      stabilization: 600s
";

/// Checks that the policy decisions in `files`, per app in window order,
/// form one chain (each `current` is the `desired` before it, a window
/// decided twice was decided alike); returns how many apps were decided on
/// in more than one file.
fn decision_chains(files: &[PathBuf]) -> usize {
    // app → window end → ((current, desired), files)
    type Windows = BTreeMap<String, ((u64, u64), Vec<usize>)>;
    let mut by_app: BTreeMap<String, Windows> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["policy"] != "climbing" {
                continue;
            }
            let app = v["app"].as_str().unwrap().to_string();
            let time = v["time"].as_str().unwrap().to_string();
            let cd = (
                v["current"].as_u64().unwrap(),
                v["desired"].as_u64().unwrap(),
            );
            let entry = by_app
                .entry(app.clone())
                .or_default()
                .entry(time.clone())
                .or_insert((cd, Vec::new()));
            assert_eq!(
                entry.0, cd,
                "{app} at {time}: decided differently by two members"
            );
            entry.1.push(i);
        }
    }
    assert!(!by_app.is_empty(), "the policy decided");
    let mut shared = 0;
    for (app, windows) in &by_app {
        let mut previous: Option<u64> = None;
        for (time, ((current, desired), _)) in windows {
            if let Some(p) = previous {
                assert_eq!(
                    *current, p,
                    "{app} at {time}: starts from {current}, the decision before left {p}"
                );
            }
            previous = Some(*desired);
        }
        let files: std::collections::BTreeSet<usize> = windows
            .values()
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        shared += usize::from(files.len() > 1);
    }
    shared
}

/// Static membership: a replica killed and restarted under the same
/// `instance_id` within the session timeout gets its partitions back at
/// once, without waiting for its old session to expire and without a
/// rebalance — and counts every record once.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn a_restart_under_the_same_instance_id_gets_its_partitions_back_at_once() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), &N.to_string(), "707");
    let want = expected(&text);
    let topic = unique("router-static");
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    produce(&topic, 3, &(first.join("\n") + "\n"));
    // A session far longer than the restart: without static membership
    // the group would wait for it to expire before handing anything out.
    let cfg = config(dir.path(), &topic);
    let body = std::fs::read_to_string(&cfg).unwrap();
    let id = unique("vane");
    std::fs::write(
        &cfg,
        body.replace("\"6000\"", "\"45000\"").replace(
            "format = \"gorouter\"\n",
            "format = \"gorouter\"\ninstance_id = \"${VANE_TEST_POD}\"\n",
        ),
    )
    .unwrap();
    let checkpointed = || checkpointed_lines(dir.path());
    let mut first_run = vane()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("VANE_TEST_POD", &id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for("the first run to checkpoint the first half", || {
        checkpointed() >= first.len() as u64
    });
    first_run.kill().unwrap(); // SIGKILL: no LeaveGroup
    first_run.wait().unwrap();
    let records: Vec<(String, String)> = keyed(&(second.join("\n") + "\n"));
    let records: Vec<(&str, &str)> = records
        .iter()
        .map(|(k, l)| (k.as_str(), l.as_str()))
        .collect();
    produce_more(&topic, &records);
    let restarted = std::time::Instant::now();
    let out = vane()
        .args(["run", "--exit-when-idle", "5s", "--config"])
        .arg(&cfg)
        .env("VANE_TEST_POD", &id)
        .output()
        .unwrap();
    let took = restarted.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the restarted run took {took:?} (exits 5 s after its input)");
    assert!(out.status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(40),
        "the restart did not wait out the 45 s session: {took:?}\n{stderr}"
    );
    let s = summary(&out.stderr);
    assert_eq!(s["late"], 0, "{s:?}");
    let stored = wait_until_stored(&want);
    assert_eq!(stored, want);
}

/// Requests per (app, window start in ms) counted straight from the lines:
/// the truth every member's windows together must match.
fn truth_by_window(text: &str) -> BTreeMap<(String, i64), u64> {
    const WINDOW_MS: i64 = 10_000;
    let mapping = vane::decode::Mapping::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let rec = vane::decode::decode_gorouter(line, &mapping).unwrap();
        let ms = rec.time_ns.div_euclid(1_000_000);
        let start = ms.div_euclid(WINDOW_MS) * WINDOW_MS;
        *out.entry((rec.app.to_string(), start)).or_default() += 1;
    }
    out
}

/// The union of members' window rows keyed by (app, window start in ms).
fn union_by_start(union: &BTreeMap<(String, String), u64>) -> BTreeMap<(String, i64), u64> {
    union
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|((app, end), n)| {
            let end = vane::time::parse_iso8601(end.as_bytes()).unwrap() / 1_000_000;
            ((app.clone(), end - 10_000), *n)
        })
        .collect()
}

/// Three members on a 12-partition topic fed at real-time pace; five
/// `kill -9`s of members at set moments: two restarted at once, one after
/// a pause, one killed again, one never restarted. Every window of every
/// app is exact — none missing, none counted twice — in the union of the
/// members' JSON-lines files and in the store.
#[test]
#[ignore = "needs services: scripts/test.sh"]
fn three_members_killed_five_times_keep_every_window_exact() {
    const N: usize = 70_000;
    const RPS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let text = generate(dir.path(), &N.to_string(), "808");
    let truth = truth_by_window(&text);
    let want = expected(&text);
    let topic = unique("router-chaos");
    produce_keyed(&topic, 12, &[]);
    let group = unique("group");
    // Every app decided on by the climbing policy: one chain of decisions
    // per app across the three members and their restarts.
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("all.yaml"), CLIMBING_POLICY).unwrap();
    let rules = format!("rules = [\"{}\"]\n", rules.display());
    let cfg = |name: &str| {
        member_config(
            &dir.path().join(name),
            &group,
            &topic,
            FAST_CHECKPOINTS,
            &rules,
        )
    };
    // Each run's log in a file of its own (the last one's summary counts).
    let runs = std::cell::Cell::new(0);
    let spawn = |name: &str| {
        runs.set(runs.get() + 1);
        let log = dir.path().join(format!("{name}.{}.log", runs.get()));
        std::fs::write(
            dir.path().join(format!("{name}.last")),
            log.to_str().unwrap(),
        )
        .unwrap();
        vane()
            .args(["run", "--exit-when-idle", "15s", "--config"])
            .arg(cfg(name))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let names = ["m0", "m1", "m2"];
    let mut members: Vec<Option<std::process::Child>> =
        names.iter().map(|n| Some(spawn(n))).collect();
    std::thread::sleep(Duration::from_secs(8));
    let producer = {
        let (topic, records) = (topic.clone(), keyed(&text));
        std::thread::spawn(move || produce_paced(topic, records, RPS))
    };
    let started = std::time::Instant::now();
    // (seconds into the traffic, member, restart after seconds: None = never)
    let plan: [(u64, usize, Option<u64>); 5] = [
        (6, 1, Some(0)),
        (11, 2, Some(9)),
        (16, 0, Some(0)),
        (22, 1, Some(0)),
        (28, 2, None),
    ];
    let mut restarts: Vec<(u64, usize)> = Vec::new();
    for (at, who, again) in plan {
        while started.elapsed() < Duration::from_secs(at) {
            std::thread::sleep(Duration::from_millis(50));
            // Restarts due meanwhile.
            let now = started.elapsed().as_secs();
            restarts.retain(|(when, m)| {
                if *when <= now {
                    members[*m] = Some(spawn(names[*m]));
                    false
                } else {
                    true
                }
            });
        }
        if let Some(mut child) = members[who].take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            eprintln!("killed {} at {:?}", names[who], started.elapsed());
        }
        match again {
            Some(0) => members[who] = Some(spawn(names[who])),
            Some(after) => restarts.push((at + after, who)),
            None => {}
        }
    }
    for (when, m) in restarts {
        while started.elapsed() < Duration::from_secs(when) {
            std::thread::sleep(Duration::from_millis(50));
        }
        members[m] = Some(spawn(names[m]));
    }
    producer.join().unwrap();
    // On failure: what each run said about its partitions.
    let dump_logs = || {
        let mut logs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            for l in text.lines().filter(|l| {
                [
                    "assigned",
                    "revoked",
                    "taken over",
                    "moved",
                    "starting",
                    "lines ",
                ]
                .iter()
                .any(|w| l.contains(w))
            }) {
                eprintln!("{}: {l}", log.file_name().unwrap().to_string_lossy());
            }
        }
    };
    let mut late = 0;
    for (name, child) in names.iter().zip(members) {
        let Some(child) = child else { continue };
        let status = child.wait_with_output().unwrap().status;
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.last"))).unwrap();
        let stderr = std::fs::read(&log).unwrap();
        assert!(
            status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&stderr)
        );
        let s = summary(&stderr);
        eprintln!("{name}: {s:?}");
        late += s["late"];
    }
    if late > 0 {
        dump_logs();
    }
    assert_eq!(late, 0);
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.path().join(n).join("data/windows.jsonl"))
        .collect();
    let (union, conflicts) = windows_of(&files);
    if !conflicts.is_empty() {
        dump_logs();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let key = &conflicts[0].0;
            for l in text.lines().filter(|l| {
                l.contains(&key.0) && l.contains(&key.1) && l.contains("\"instance\":null")
            }) {
                eprintln!("{}: {}", f.display(), &l[..l.len().min(200)]);
            }
        }
    }
    assert!(
        conflicts.is_empty(),
        "written twice, differently: {:?}",
        &conflicts[..conflicts.len().min(5)]
    );
    let union = union_by_start(&union);
    let missing: Vec<_> = truth
        .iter()
        .filter(|(k, n)| union.get(*k) != Some(n))
        .collect();
    let extra: Vec<_> = union
        .iter()
        .filter(|(k, _)| !truth.contains_key(*k))
        .collect();
    if !(missing.is_empty() && extra.is_empty()) {
        dump_logs();
    }
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} of {} windows differ, first: {:?}; extra: {:?}",
        missing.len(),
        truth.len(),
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    let stored = wait_until_stored(&want);
    assert_eq!(stored, want, "the store");
    for app in want.keys() {
        let series = common::store::stored_series(app);
        for ((a, start), n) in truth.iter().filter(|((a, _), _)| a == app) {
            let got = series.get(start).copied().unwrap_or(0.0);
            assert_eq!(got as u64, *n, "{a} at {start}: the store");
        }
    }
    // Decisions: per app per window one decision (a window two members
    // recorded — the dead one past its checkpoint, its successor — was
    // decided alike, so scaling to it twice is one action), and each
    // starts from the count the one before it left, whoever took it.
    let decisions: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.path().join(n).join("data/decisions.jsonl"))
        .collect();
    let shared = decision_chains(&decisions);
    eprintln!("apps decided on by more than one member: {shared}");
    assert!(
        shared > 0,
        "partitions moved between members, and their apps' decisions with them"
    );
}
