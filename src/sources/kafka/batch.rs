//! Fetched records taken from librdkafka in batches instead of one poll each.
//!
//! `BaseConsumer::poll` hands over one record per call, and each call reads
//! the clock three times inside librdkafka and once more in rdkafka, takes the
//! queue's lock and allocates an event (measured: ~17 % of Vane's time on
//! the Kafka bench). Here the assigned partitions' fetch queues are forwarded
//! to one queue of this consumer's own, which is drained with
//! `rd_kafka_consume_batch_queue` (not wrapped by the rdkafka crate), up to
//! [`PULL`] records at a time.
//!
//! The group's events (assignments, statistics, commits) stay on the
//! consumer's queue, served by `poll` as before: batch consumption serves
//! events itself, and would answer an assignment with an unassign.
//!
//! Order: a partition's records reach this queue only once it is forwarded
//! here (after its assignment was taken); those fetched before went to the
//! consumer's queue, so that queue is always drained first
//! ([`Queue::is_empty`]).

use std::collections::VecDeque;
use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

/// Records taken from the queue per call, at most.
pub(super) const PULL: usize = 256;

/// A handle on one of librdkafka's queues.
pub(super) struct Queue {
    ptr: NonNull<rd::rd_kafka_queue_t>,
}

// SAFETY: librdkafka's queues are locked internally; a handle may be used
// and destroyed from any thread.
unsafe impl Send for Queue {}

impl Queue {
    /// A new queue of this consumer's own, for its partitions' records.
    pub(super) fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Queue> {
        // SAFETY: the client pointer is valid while `consumer` is; the queue
        // must be destroyed before the consumer (see `KafkaSource`'s fields).
        let ptr = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        NonNull::new(ptr).map(|ptr| Queue { ptr })
    }

    /// The consumer's own queue, where events and records of partitions not
    /// forwarded yet arrive.
    pub(super) fn of_consumer<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<Queue> {
        // SAFETY: as in `new`.
        let ptr = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        NonNull::new(ptr).map(|ptr| Queue { ptr })
    }

    pub(super) fn is_empty(&self) -> bool {
        // SAFETY: a live handle.
        unsafe { rd::rd_kafka_queue_length(self.ptr.as_ptr()) == 0 }
    }

    /// Sends the records fetched for `topic`/`partition` (and those already
    /// waiting in its fetch queue) here from now on. False when librdkafka
    /// does not know the partition: its records keep going to the
    /// consumer's queue.
    ///
    /// Forwarding outlives the assignment's fetcher only until the
    /// partition is revoked (librdkafka then clears it): call this again on
    /// every assignment.
    pub(super) fn route_partition<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
    ) -> bool {
        let Ok(topic) = CString::new(topic) else {
            return false;
        };
        // SAFETY: valid client and string; the partition queue handle is
        // released right after the forward, which holds a reference of its
        // own on this queue.
        unsafe {
            let part = rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            );
            if part.is_null() {
                return false;
            }
            rd::rd_kafka_queue_forward(part, self.ptr.as_ptr());
            rd::rd_kafka_queue_destroy(part);
        }
        true
    }

    /// Moves up to [`PULL`] records to the end of `into`, waiting up to
    /// `timeout` for the first. Returns how many.
    pub(super) fn pull(&self, timeout: Duration, into: &mut VecDeque<RawMessage>) -> usize {
        let mut taken = [std::ptr::null_mut::<rd::rd_kafka_message_t>(); PULL];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `taken` has room for PULL pointers; librdkafka fills the
        // first `n` with messages this side now owns.
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(self.ptr.as_ptr(), ms, taken.as_mut_ptr(), PULL)
        };
        let n = usize::try_from(n).unwrap_or(0).min(PULL);
        into.extend(
            taken[..n]
                .iter()
                .filter_map(|&m| NonNull::new(m).map(|ptr| RawMessage { ptr })),
        );
        n
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the handle is live and destroyed once.
        unsafe { rd::rd_kafka_queue_destroy(self.ptr.as_ptr()) }
    }
}

/// One record (or consumer error) taken from a [`Queue`], freed on drop.
pub(super) struct RawMessage {
    ptr: NonNull<rd::rd_kafka_message_t>,
}

// SAFETY: a message is owned by this handle alone until it is destroyed, which
// librdkafka allows from any thread.
unsafe impl Send for RawMessage {}

impl RawMessage {
    fn raw(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: live until drop.
        unsafe { self.ptr.as_ref() }
    }

    /// The consumer error this message carries instead of a record.
    pub(super) fn error(&self) -> Option<String> {
        let err = self.raw().err;
        (err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| {
            format!(
                "message consumption error: {:?} ({})",
                RDKafkaErrorCode::from(err),
                self.topic()
            )
        })
    }

    pub(super) fn topic(&self) -> &str {
        let rkt = self.raw().rkt;
        if rkt.is_null() {
            return "";
        }
        // SAFETY: a message's topic handle lives as long as the message; its
        // name is a NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(rd::rd_kafka_topic_name(rkt)) }
            .to_str()
            .unwrap_or("")
    }

    pub(super) fn partition(&self) -> i32 {
        self.raw().partition
    }

    pub(super) fn offset(&self) -> i64 {
        self.raw().offset
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: `len` bytes at `payload`, live as long as the message.
        (!m.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) })
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: as for the payload.
        (!m.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.key.cast::<u8>(), m.key_len) })
    }

    /// Asks the CPU to start loading the payload (its first kilobyte) while
    /// the record before it is copied: the fetcher thread wrote it long
    /// enough ago that it left the nearer caches, and the first look at it
    /// (the newline check) waited on memory (~5 % of the Kafka bench).
    #[inline]
    pub(super) fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = self.payload() {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            for line in p.chunks(64).take(16) {
                // SAFETY: a prefetch never faults, and SSE is part of every
                // x86-64 CPU.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
            }
        }
    }

    /// The record's timestamp in milliseconds, when it has one.
    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message and a place for the kind.
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.ptr.as_ptr(), &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ms != -1)
            .then_some(ms)
    }
}

impl Drop for RawMessage {
    fn drop(&mut self) {
        // SAFETY: owned here, destroyed once.
        unsafe { rd::rd_kafka_message_destroy(self.ptr.as_ptr()) }
    }
}
