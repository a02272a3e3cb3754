//! Decode-only and decode + window throughput per format, on 1M generated lines
//! each (realistic traffic: 200 apps, 2,000 instances). Reported per line
//! (`lines`) and per byte (`bytes`).
//!
//! Run: `cargo bench --bench decode` (`BENCH_LINES` to change the corpus size).

use std::hint::black_box;
use std::io;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vane::decode::{Format, Mapping, decode};
use vane::generate::{TrafficSpec, generate};
use vane::pipeline::Pipeline;
use vane::sinks::JsonlFile;
use vane::window::WindowConfig;

fn corpus(format: Format, lines: u64) -> Vec<u8> {
    let spec = TrafficSpec {
        format,
        lines,
        apps: 200,
        instances: 2_000,
        rps: 20_000.0,
        seed: 42,
        ..TrafficSpec::default()
    };
    let mut buf = Vec::with_capacity(lines as usize * 600);
    generate(&spec, &mut buf).expect("writing to memory");
    buf
}

fn decode_all(format: Format, data: &[u8], mapping: &Mapping) -> u64 {
    let text = std::str::from_utf8(data).expect("generated text is UTF-8");
    let mut ok = 0;
    for line in text.lines() {
        if let Ok(rec) = decode(format, line, mapping) {
            ok += u64::from(black_box(rec.status) > 0);
        }
    }
    ok
}

fn decode_and_window(format: Format, data: &[u8]) -> u64 {
    let mut p = Pipeline::new(
        WindowConfig::default(),
        JsonlFile::writer(io::sink()),
        JsonlFile::writer(io::sink()),
    );
    let src = p.add_source(format, Mapping::new());
    p.process_bytes(src, "bench", 0, data)
        .expect("sink never fails");
    p.finish().expect("sink never fails");
    p.core.counts.windows_written
}

fn benches(c: &mut Criterion) {
    let lines: u64 = std::env::var("BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mapping = Mapping::new();
    for format in Format::CONCRETE {
        let data = corpus(format, lines);
        for (unit, throughput) in [
            ("lines", Throughput::Elements(lines)),
            ("bytes", Throughput::Bytes(data.len() as u64)),
        ] {
            let mut g = c.benchmark_group(format!("{format}/{unit}"));
            g.sample_size(10);
            g.throughput(throughput);
            g.bench_function("decode", |b| b.iter(|| decode_all(format, &data, &mapping)));
            g.bench_function("decode+window", |b| {
                b.iter_batched(
                    || (),
                    |()| decode_and_window(format, &data),
                    BatchSize::PerIteration,
                )
            });
            g.finish();
        }
    }
}

criterion_group!(decode_benches, benches);
criterion_main!(decode_benches);
