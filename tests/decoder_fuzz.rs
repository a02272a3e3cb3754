//! Nothing panics on input: every decoder, on arbitrary text and on real lines
//! cut and corrupted at random places, returns a record or an error.

mod common;

use proptest::prelude::*;
use vane::decode::{Format, Mapping, decode};

fn corpus_lines() -> &'static [String] {
    static LINES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LINES.get_or_init(load_corpus)
}

fn load_corpus() -> Vec<String> {
    let mut out = Vec::new();
    for f in [
        "gorouter_access_log_samples.log",
        "beats_nginx_ingress_controller_test.log",
    ] {
        let text =
            std::fs::read_to_string(common::shared_data(&format!("access-logs/{f}"))).unwrap();
        out.extend(text.lines().map(String::from));
    }
    let apache =
        std::fs::read_to_string(common::shared_data("access-logs/elastic_apache_logs.log"))
            .unwrap();
    out.extend(apache.lines().take(50).map(String::from));
    out.push(r#"{"msec":"1700000000.123","host":"a","status":"200","request_time":"0.1","upstream_addr":"1.2.3.4:80, 5.6.7.8:80"}"#.into());
    out
}

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::Gorouter,
    Format::NginxJson,
    Format::Combined,
    Format::IngressNginx,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,300}") {
        let m = Mapping::new();
        for f in FORMATS {
            let _ = decode(f, &line, &m);
        }
        let _ = vane::decode::decode_loggregator(&line);
        let _ = vane::decode::prometheus::parse_line(&line);
    }

    #[test]
    fn exposition_like_text_never_panics(line in "[a-z_]{1,8}(\\{([a-z]{1,3}=\"[^\"]{0,5}\"?,?){0,3}\\}?)? ?[-+0-9.eInf]{0,8} ?[0-9]{0,5}") {
        let _ = vane::decode::prometheus::parse_line(&line);
    }

    #[test]
    fn corrupted_real_lines_never_panic(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), junk in "[\\[\\]\"\\\\{}:, \\-0-9a-zé]{0,8}") {
        let lines = corpus_lines();
        let line = &lines[pick.index(lines.len())];
        let mut at = cut.index(line.len() + 1);
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        let m = Mapping::new();
        for candidate in [line[..at].to_string(), format!("{}{junk}{}", &line[..at], &line[at..])] {
            for f in FORMATS {
                let _ = decode(f, &candidate, &m);
            }
        }
    }
}
