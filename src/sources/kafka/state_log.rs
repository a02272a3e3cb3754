//! What the next owner of a partition needs to go on deciding for its apps
//! (cooldowns, stabilization, instance counts), kept in a Kafka topic of the
//! group, `{group}.vane-state`, one partition: at each checkpoint the owner
//! of every partition appends one record, keyed `topic/partition`, holding
//! that partition's state as of its newest emitted window. A new owner
//! reads the tail of the topic and takes the newest record of its partition
//! that is not newer than the windows the previous owner committed as emitted.
//!
//! The bytes are the shell's (see `run::handover`); this only stores them.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::Offset;

/// How far back from the end of the topic a new owner looks: several
/// checkpoints of every partition of a large topic.
const TAIL_RECORDS: i64 = 4_096;
/// How long a publish may wait for the broker, and a read for the tail.
const WAIT: Duration = Duration::from_secs(10);
/// A partition's state record at most (the broker's default limit is 1 MiB;
/// compressed, about 3,000 apps per partition fit).
const MAX_RECORD: &str = "8388608";

pub struct StateLog {
    client: ClientConfig,
    topic: String,
    producer: Option<BaseProducer>,
}

impl StateLog {
    /// `client` holds the brokers and security settings of the source.
    pub fn new(client: ClientConfig, group: &str) -> StateLog {
        StateLog {
            client,
            topic: format!("{group}.vane-state"),
            producer: None,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer, the topic created first if it is missing.
    fn producer(&mut self) -> Result<&BaseProducer, String> {
        if self.producer.is_none() {
            self.create_topic()?;
            let producer: BaseProducer = self
                .client
                .clone()
                .set("compression.type", "lz4")
                .set("message.max.bytes", MAX_RECORD)
                .set("linger.ms", "0")
                .create()
                .map_err(|e| format!("kafka producer for {}: {e}", self.topic))?;
            self.producer = Some(producer);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| "no producer".to_string())
    }

    /// Creates the topic (one partition); one that exists is fine. On a
    /// thread of its own: the admin call is a future, and the run loop is
    /// inside a runtime already.
    fn create_topic(&self) -> Result<(), String> {
        let client = self.client.clone();
        let topic = self.topic.clone();
        let created = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let admin: AdminClient<DefaultClientContext> =
                client.create().map_err(|e| e.to_string())?;
            let opts = AdminOptions::new().operation_timeout(Some(WAIT));
            let answers = rt
                .block_on(
                    admin.create_topics(
                        &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
                            .set("max.message.bytes", MAX_RECORD)],
                        &opts,
                    ),
                )
                .map_err(|e| e.to_string())?;
            for answer in answers {
                match answer {
                    Ok(_) => {}
                    Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((t, code)) => return Err(format!("cannot create topic {t}: {code}")),
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| "topic creation panicked".to_string())?;
        created.map_err(|e| format!("kafka state topic {}: {e}", self.topic))
    }

    /// Appends one record per partition (`topic/partition`, state) and waits
    /// until the broker has them all.
    pub fn publish(&mut self, states: &[(String, Vec<u8>)]) -> Result<(), String> {
        if states.is_empty() {
            return Ok(());
        }
        let topic = self.topic.clone();
        let producer = self.producer()?;
        for (stream, bytes) in states {
            let mut record = BaseRecord::to(&topic)
                .key(stream.as_str())
                .payload(bytes.as_slice())
                .partition(0);
            let deadline = Instant::now() + WAIT;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) if Instant::now() < deadline => {
                        tracing::debug!(error = %e, "kafka state: queue full, waiting");
                        producer.poll(Duration::from_millis(10));
                        record = r;
                    }
                    Err((e, _)) => return Err(format!("kafka state {stream}: {e}")),
                }
            }
        }
        producer
            .flush(WAIT)
            .map_err(|e| format!("kafka state topic {topic}: {e}"))
    }

    /// The newest record of `stream` whose window end (read by `closed_of`)
    /// is not after `closed_ns`, from the tail of the topic; `None` when
    /// there is none (or the topic cannot be read: the state starts afresh).
    pub fn latest(
        &self,
        stream: &str,
        closed_ns: i64,
        closed_of: impl Fn(&[u8]) -> Option<i64>,
    ) -> Result<Option<Vec<u8>>, String> {
        let consumer: BaseConsumer = self
            .client
            .clone()
            .set("group.id", format!("{}.reader", self.topic))
            .set("enable.auto.commit", "false")
            .set("fetch.message.max.bytes", MAX_RECORD)
            .create()
            .map_err(|e| format!("kafka reader for {}: {e}", self.topic))?;
        let (low, high) = match consumer.fetch_watermarks(&self.topic, 0, WAIT) {
            Ok(w) => w,
            // No topic yet: nobody published.
            Err(_) => return Ok(None),
        };
        if high <= low {
            return Ok(None);
        }
        let from = low.max(high - TAIL_RECORDS);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(from))
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + WAIT;
        let mut best: Option<(i64, Vec<u8>)> = None;
        while Instant::now() < deadline {
            let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = msg.map_err(|e| e.to_string())?;
            if msg.key() == Some(stream.as_bytes())
                && let Some(bytes) = msg.payload()
                && let Some(at) = closed_of(bytes)
                && at <= closed_ns
                && best.as_ref().is_none_or(|(b, _)| at >= *b)
            {
                best = Some((at, bytes.to_vec()));
            }
            if msg.offset() >= high - 1 {
                return Ok(best.map(|(_, b)| b));
            }
        }
        Err(format!(
            "kafka state topic {}: not read to its end within {WAIT:?}",
            self.topic
        ))
    }
}
