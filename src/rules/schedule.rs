//! Schedules that override a policy's `min`/`max`: recurring (a cron expression
//! in an IANA time zone, active for `duration` after each occurrence) or a fixed
//! range of dates. Cron parsing is croner's, the crate tokio-cron-scheduler uses.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde_saphyr::Location;

use super::model;
use crate::time::parse_duration;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub when: When,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum When {
    Recurring {
        cron: Box<Cron>,
        tz: Tz,
        duration_ns: i64,
    },
    Range {
        from_ns: i64,
        to_ns: i64,
    },
}

type CompileError = (Location, String, Option<String>);

fn at<T>(s: &serde_saphyr::Spanned<T>) -> Location {
    s.referenced
}

fn rfc3339(s: &serde_saphyr::Spanned<String>) -> Result<i64, CompileError> {
    DateTime::parse_from_rfc3339(&s.value)
        .ok()
        .and_then(|d| d.timestamp_nanos_opt())
        .ok_or_else(|| {
            (
                at(s),
                format!("`{}` is not an RFC 3339 time", s.value),
                Some("like `2025-12-24T00:00:00Z`".into()),
            )
        })
}

impl Schedule {
    pub fn compile(s: &model::Schedule, min: u32, max: u32) -> Result<Schedule, CompileError> {
        let anchor = s
            .cron
            .as_ref()
            .or(s.from.as_ref())
            .map_or(Location::UNKNOWN, at);
        let when = match (&s.cron, &s.from, &s.to) {
            (Some(cron), from, to) if from.is_some() == to.is_some() => {
                let parsed = Cron::from_str(&cron.value).map_err(|e| {
                    (
                        at(cron),
                        format!("cron `{}`: {e}", cron.value),
                        Some("like `0 8 * * MON-FRI`".into()),
                    )
                })?;
                let tz = match &s.timezone {
                    None => Tz::UTC,
                    Some(z) => z.value.parse::<Tz>().map_err(|_| {
                        (
                            at(z),
                            format!("`{}` is not an IANA time zone", z.value),
                            Some("like `Europe/Berlin`".into()),
                        )
                    })?,
                };
                let duration = s.duration.as_ref().ok_or((
                    at(cron),
                    "a cron schedule needs `duration`".to_string(),
                    Some("like `duration: 10h`".into()),
                ))?;
                let d = parse_duration(&duration.value).map_err(|e| (at(duration), e, None))?;
                When::Recurring {
                    cron: Box::new(parsed),
                    tz,
                    duration_ns: d.as_nanos().min(i64::MAX as u128) as i64,
                }
            }
            (None, Some(from), Some(to)) => {
                let (from_ns, to_ns) = (rfc3339(from)?, rfc3339(to)?);
                if to_ns <= from_ns {
                    return Err((at(to), "`to` must be after `from`".into(), None));
                }
                When::Range { from_ns, to_ns }
            }
            _ => {
                return Err((
                    anchor,
                    "a schedule has either `cron` (with `duration`) or both `from` and `to`".into(),
                    None,
                ));
            }
        };
        let (smin, smax) = (
            s.min.as_ref().map(|v| v.value),
            s.max.as_ref().map(|v| v.value),
        );
        if smin.is_none() && smax.is_none() {
            return Err((
                anchor,
                "a schedule must set `min`, `max` or both".into(),
                None,
            ));
        }
        if smin.unwrap_or(min) > smax.unwrap_or(max) {
            return Err((
                anchor,
                "the schedule's min is larger than its max".into(),
                None,
            ));
        }
        let name = s.name.clone().unwrap_or_else(|| match &when {
            When::Recurring { .. } => s.cron.as_ref().map_or(String::new(), |c| c.value.clone()),
            When::Range { .. } => format!(
                "{} to {}",
                s.from.as_ref().map_or("", |f| &f.value),
                s.to.as_ref().map_or("", |t| &t.value)
            ),
        });
        Ok(Schedule {
            name,
            when,
            min: smin,
            max: smax,
        })
    }

    /// Whether the schedule is in force at `t_ns` (Unix nanoseconds).
    pub fn active_at(&self, t_ns: i64) -> bool {
        match &self.when {
            When::Range { from_ns, to_ns } => (*from_ns..*to_ns).contains(&t_ns),
            When::Recurring {
                cron,
                tz,
                duration_ns,
            } => {
                let now = Utc.timestamp_nanos(t_ns).with_timezone(tz);
                match cron.find_previous_occurrence(&now, true) {
                    Ok(prev) => prev
                        .timestamp_nanos_opt()
                        .is_some_and(|p| t_ns - p < *duration_ns),
                    Err(_) => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::unspanned;

    fn recurring(cron: &str, tz: &str, duration: &str) -> Schedule {
        let s = model::Schedule {
            name: None,
            cron: Some(unspanned(cron.into())),
            timezone: Some(unspanned(tz.into())),
            duration: Some(unspanned(duration.into())),
            from: None,
            to: None,
            min: Some(unspanned(5)),
            max: None,
        };
        Schedule::compile(&s, 1, 10).unwrap()
    }

    fn ns(rfc: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn weekday_mornings_in_berlin() {
        let s = recurring("0 8 * * MON-FRI", "Europe/Berlin", "10h");
        // 2025-12-01 is a Monday; Berlin is UTC+1 in winter.
        assert!(!s.active_at(ns("2025-12-01T06:59:00Z")));
        assert!(s.active_at(ns("2025-12-01T07:00:00Z")));
        assert!(s.active_at(ns("2025-12-01T16:59:00Z")));
        assert!(!s.active_at(ns("2025-12-01T17:00:00Z")));
        assert!(!s.active_at(ns("2025-12-06T09:00:00Z")), "Saturday");
        // Summer time: UTC+2.
        assert!(s.active_at(ns("2025-07-01T06:00:00Z")));
    }

    #[test]
    fn bad_cron_and_zone_are_explained() {
        let mut m = model::Schedule {
            name: None,
            cron: Some(unspanned("61 * * * *".into())),
            timezone: None,
            duration: Some(unspanned("1h".into())),
            from: None,
            to: None,
            min: Some(unspanned(2)),
            max: None,
        };
        assert!(Schedule::compile(&m, 1, 5).unwrap_err().1.contains("cron"));
        m.cron = Some(unspanned("0 8 * * *".into()));
        m.timezone = Some(unspanned("Mars/Olympus".into()));
        assert!(Schedule::compile(&m, 1, 5).unwrap_err().1.contains("IANA"));
    }
}
