//! Demand forecasts for predictive scaling: per app, the request rate at
//! 1-minute resolution from the app's own history, decomposed into daily
//! (and, with two weeks of history, weekly) seasonality and a trend (MSTL,
//! with AutoETS on the trend: Grafana's `augurs`), refitted on a schedule.
//!
//! Pure: the caller feeds window rates and event time and asks for the
//! forecast at a time; nothing here reads a clock, a file or the network.
//! A forecast is *refused* — and says why — when there is too little
//! history, when the history has no seasonality to speak of, or when its
//! error at the lead time (wMAPE over the last day) is above the limit:
//! predictive scaling then falls back to reactive.

use std::collections::VecDeque;

use augurs::ets::AutoETS;
use augurs::{Fit, Predict};

use crate::time::NANOS_PER_SEC;

const MINUTE_NS: i64 = 60 * NANOS_PER_SEC;
const DAY_MINUTES: usize = 1_440;
const WEEK_MINUTES: usize = 7 * DAY_MINUTES;

/// What a forecaster is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastSettings {
    /// How far ahead of a decision the forecast is read (start-up + buffer).
    pub lead_ns: i64,
    /// Refit this often (event time).
    pub refresh_ns: i64,
    /// The most wMAPE at the lead time a forecast may have and be used.
    pub max_error: f64,
    /// The least seasonal strength (0–1: 1 − var(remainder) ÷
    /// var(seasonal + remainder)) a history needs to be forecast at all.
    pub min_strength: f64,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            lead_ns: 90 * NANOS_PER_SEC,
            refresh_ns: 3_600 * NANOS_PER_SEC,
            max_error: 0.25,
            min_strength: 0.6,
        }
    }
}

/// The fewest minutes of history fitted: two days (two daily cycles).
pub const MIN_HISTORY_MINUTES: usize = 2 * DAY_MINUTES;
/// The most kept: 15 days (two weekly cycles and a day).
const MAX_HISTORY_MINUTES: usize = 15 * DAY_MINUTES;
/// How far each fit forecasts: a day.
const HORIZON_MINUTES: usize = DAY_MINUTES;
/// The error is the wMAPE of the last day's minutes.
const ERROR_MINUTES: usize = DAY_MINUTES;

/// One fit's forecast: minute `i` is `from_minute + i`.
#[derive(Debug, Clone)]
struct Fitted {
    made_at_minute: i64,
    from_minute: i64,
    points: Vec<f64>,
}

impl Fitted {
    fn at(&self, minute: i64) -> Option<f64> {
        let i = usize::try_from(minute.checked_sub(self.from_minute)?).ok()?;
        self.points.get(i).copied()
    }
}

/// What the forecaster says about a time: the rate, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Outlook {
    /// The forecast rate (req/s) and its wMAPE at the lead time so far
    /// (`None` before a day of forecasts has been checked: the hold-out's).
    Rate {
        rps: f64,
        error: f64,
    },
    Refused(String),
}

/// One app's history and forecasts.
#[derive(Debug, Clone)]
pub struct Forecaster {
    settings: ForecastSettings,
    /// Mean rate of each closed minute; the last is `last_minute`.
    minutes: VecDeque<f64>,
    last_minute: Option<i64>,
    /// The open minute: its index, Σ rate × seconds, seconds.
    open: Option<(i64, f64, f64)>,
    /// The last two fits (the one read at the lead time may be the older).
    fits: VecDeque<Fitted>,
    next_refresh_minute: i64,
    /// (|actual − forecast at the lead time|, actual) per checked minute.
    errors: VecDeque<(f64, f64)>,
    /// The error of the first fit on a held-out last day, until a day is checked.
    holdout_error: Option<f64>,
    refused: Option<String>,
}

impl Forecaster {
    pub fn new(settings: ForecastSettings) -> Self {
        Forecaster {
            settings,
            minutes: VecDeque::new(),
            last_minute: None,
            open: None,
            fits: VecDeque::new(),
            next_refresh_minute: i64::MIN,
            errors: VecDeque::new(),
            holdout_error: None,
            refused: Some("no history yet".into()),
        }
    }

    /// A window `[start_ns, end_ns)` at `rps` requests/s.
    pub fn observe(&mut self, start_ns: i64, end_ns: i64, rps: f64) {
        if end_ns <= start_ns || !rps.is_finite() {
            return;
        }
        let minute = start_ns.div_euclid(MINUTE_NS);
        let secs = (end_ns - start_ns) as f64 / NANOS_PER_SEC as f64;
        match &mut self.open {
            Some((m, sum, n)) if *m == minute => {
                *sum += rps * secs;
                *n += secs;
            }
            Some((m, _, _)) if *m > minute => {} // late: the minute is closed
            _ => {
                if let Some((m, sum, n)) = self.open.take() {
                    self.close_minute(m, sum / n.max(1e-9));
                }
                self.open = Some((minute, rps * secs, secs));
            }
        }
    }

    /// Closes `minute` at `mean`, filling minutes missing before it with it.
    fn close_minute(&mut self, minute: i64, mean: f64) {
        if let Some(last) = self.last_minute
            && minute > last + 1
        {
            for gap in last + 1..minute {
                self.push_minute(gap, mean);
            }
        }
        self.push_minute(minute, mean);
    }

    fn push_minute(&mut self, minute: i64, mean: f64) {
        let lead_minutes = self.settings.lead_ns.div_euclid(MINUTE_NS);
        // The forecast this minute had `lead` before it.
        let forecast = self
            .fits
            .iter()
            .rev()
            .find(|f| f.made_at_minute <= minute - lead_minutes)
            .and_then(|f| f.at(minute));
        if let Some(f) = forecast {
            self.errors.push_back(((mean - f).abs(), mean.abs()));
            while self.errors.len() > ERROR_MINUTES {
                self.errors.pop_front();
            }
        }
        self.minutes.push_back(mean);
        while self.minutes.len() > MAX_HISTORY_MINUTES {
            self.minutes.pop_front();
        }
        self.last_minute = Some(minute);
    }

    /// The wMAPE at the lead time over the minutes checked so far (a full
    /// day of them), else the hold-out's.
    pub fn error(&self) -> Option<f64> {
        if self.errors.len() >= ERROR_MINUTES {
            let (abs, actual) = self
                .errors
                .iter()
                .fold((0.0, 0.0), |(a, b), (e, v)| (a + e, b + v));
            Some(if actual > 0.0 { abs / actual } else { 0.0 })
        } else {
            self.holdout_error
        }
    }

    /// Refits when due at `now_ns` (event time). Returns whether it fitted.
    pub fn refresh(&mut self, now_ns: i64) -> bool {
        let now_minute = now_ns.div_euclid(MINUTE_NS);
        if now_minute < self.next_refresh_minute {
            return false;
        }
        let every = self.settings.refresh_ns.div_euclid(MINUTE_NS).max(1);
        self.next_refresh_minute = now_minute.saturating_add(every);
        let Some(last) = self.last_minute else {
            return false;
        };
        if self.minutes.len() < MIN_HISTORY_MINUTES {
            self.refused = Some(format!(
                "{} h of history, {} h needed",
                self.minutes.len() / 60,
                MIN_HISTORY_MINUTES / 60
            ));
            return false;
        }
        let history: Vec<f64> = self.minutes.iter().copied().collect();
        let fit = match fit_and_forecast(&history, HORIZON_MINUTES) {
            Ok(f) => f,
            Err(e) => {
                self.refused = Some(format!("the forecast failed: {e}"));
                return false;
            }
        };
        if fit.strength < self.settings.min_strength {
            self.refused = Some(format!(
                "no seasonality: strength {:.2} < {:.2}",
                fit.strength, self.settings.min_strength
            ));
            return false;
        }
        if self.holdout_error.is_none() {
            self.holdout_error = holdout_error(&history);
        }
        self.fits.push_back(Fitted {
            made_at_minute: now_minute,
            from_minute: last + 1,
            points: fit.points,
        });
        while self.fits.len() > 2 {
            self.fits.pop_front();
        }
        self.refused = None;
        true
    }

    /// The forecast rate at `at_ns`, or why there is none.
    pub fn outlook(&self, at_ns: i64) -> Outlook {
        if let Some(why) = &self.refused {
            return Outlook::Refused(why.clone());
        }
        let minute = at_ns.div_euclid(MINUTE_NS);
        let Some(rps) = self.fits.back().and_then(|f| f.at(minute)) else {
            return Outlook::Refused("beyond the forecast's horizon".into());
        };
        let error = self.error().unwrap_or(f64::INFINITY);
        if error > self.settings.max_error {
            return Outlook::Refused(format!(
                "wMAPE {:.0}% at the lead time > {:.0}%",
                error * 100.0,
                self.settings.max_error * 100.0
            ));
        }
        Outlook::Rate {
            rps: rps.max(0.0),
            error,
        }
    }

    pub fn settings(&self) -> &ForecastSettings {
        &self.settings
    }
}

struct FitResult {
    points: Vec<f64>,
    /// The strongest seasonality's strength.
    strength: f64,
}

/// The seasonal periods `history` (minutes) supports: a day from two days
/// on, a week from two weeks on.
fn periods(len: usize) -> Vec<usize> {
    [DAY_MINUTES, WEEK_MINUTES]
        .into_iter()
        .filter(|p| len >= 2 * p)
        .collect()
}

/// The trend is fitted on the last two days of the deseasonalized history:
/// AutoETS over two weeks of minutes costs seconds a fit, and a trend two
/// weeks back says little about the next hour.
const TREND_MINUTES: usize = 2 * DAY_MINUTES;

/// MSTL on the whole history, AutoETS on the recent deseasonalized part,
/// and each seasonality carried forward from its last cycle (as augurs'
/// `MSTLModel` does, with the trend fitted on less).
fn fit_and_forecast(history: &[f64], horizon: usize) -> Result<FitResult, String> {
    let periods = periods(history.len());
    let y: Vec<f32> = history.iter().map(|v| *v as f32).collect();
    let mstl = augurs::mstl::stlrs::MstlParams::new()
        .fit(&y, &periods)
        .map_err(|e| e.to_string())?;
    let strength = mstl.seasonal_strength().into_iter().fold(0.0, f64::max);
    let n = history.len();
    let recent = n.saturating_sub(TREND_MINUTES);
    let deseasonalized: Vec<f64> = mstl.trend()[recent..]
        .iter()
        .zip(&mstl.remainder()[recent..])
        .map(|(t, r)| f64::from(t + r))
        .collect();
    let trend = AutoETS::non_seasonal()
        .fit(&deseasonalized)
        .map_err(|e| e.to_string())?
        .predict(horizon, None)
        .map_err(|e| e.to_string())?
        .point;
    let points = (0..horizon)
        .map(|h| {
            let seasonal: f64 = mstl
                .seasonal()
                .iter()
                .zip(&periods)
                .filter_map(|(component, &p)| component.get(n - p + h % p))
                .map(|v| f64::from(*v))
                .sum();
            trend.get(h).copied().unwrap_or(0.0) + seasonal
        })
        .collect();
    Ok(FitResult { points, strength })
}

/// The wMAPE of a fit on all but the last day, forecasting that day.
fn holdout_error(history: &[f64]) -> Option<f64> {
    let split = history.len().checked_sub(DAY_MINUTES)?;
    if split < MIN_HISTORY_MINUTES {
        return None;
    }
    let (train, test) = history.split_at(split);
    let fit = fit_and_forecast(train, test.len()).ok()?;
    Some(wmape(test, &fit.points))
}

/// Σ|actual − forecast| ÷ Σ actual.
pub fn wmape(actual: &[f64], forecast: &[f64]) -> f64 {
    let (abs, sum) = actual
        .iter()
        .zip(forecast)
        .fold((0.0, 0.0), |(a, s), (y, f)| {
            (a + (y - f).abs(), s + y.abs())
        });
    if sum > 0.0 { abs / sum } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day-periodic rate (req/s) per minute with a little deterministic wobble.
    fn daily(minute: i64) -> f64 {
        let phase = (minute % 1_440) as f64 / 1_440.0 * std::f64::consts::TAU;
        300.0 + 200.0 * phase.sin() + 5.0 * ((minute * 7919) % 13) as f64 / 13.0
    }

    fn feed(f: &mut Forecaster, minutes: std::ops::Range<i64>, rate: impl Fn(i64) -> f64) {
        for m in minutes {
            for w in 0..6 {
                let start = m * MINUTE_NS + w * 10 * NANOS_PER_SEC;
                f.observe(start, start + 10 * NANOS_PER_SEC, rate(m));
                f.refresh(start + 10 * NANOS_PER_SEC);
            }
        }
    }

    #[test]
    fn refuses_until_two_days_then_forecasts_a_daily_pattern() {
        let mut f = Forecaster::new(ForecastSettings {
            refresh_ns: 6 * 3_600 * NANOS_PER_SEC,
            ..ForecastSettings::default()
        });
        feed(&mut f, 0..1_000, daily);
        assert!(
            matches!(f.outlook(1_001 * MINUTE_NS), Outlook::Refused(ref why) if why.contains("needed")),
            "{:?}",
            f.outlook(1_001 * MINUTE_NS)
        );
        feed(&mut f, 1_000..4 * 1_440, daily);
        let at = 4 * 1_440 + 30;
        match f.outlook(at * MINUTE_NS) {
            Outlook::Rate { rps, error } => {
                assert!((rps - daily(at)).abs() < 30.0, "{rps} vs {}", daily(at));
                assert!(error < 0.1, "{error}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn refuses_a_history_without_seasonality() {
        let mut f = Forecaster::new(ForecastSettings {
            refresh_ns: 6 * 3_600 * NANOS_PER_SEC,
            ..ForecastSettings::default()
        });
        // Noise around a constant: nothing recurs.
        let noise = |m: i64| 300.0 + 60.0 * (((m * 2_654_435_761) % 1_000) as f64 / 1_000.0 - 0.5);
        feed(&mut f, 0..3 * 1_440, noise);
        match f.outlook(3 * 1_440 * MINUTE_NS) {
            Outlook::Refused(why) => assert!(why.contains("no seasonality"), "{why}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn wmape_weights_by_volume() {
        assert_eq!(wmape(&[100.0, 0.0], &[90.0, 10.0]), 0.2);
        assert_eq!(wmape(&[0.0], &[5.0]), 0.0);
    }
}
