//! Knative's KPA decider (`pkg/autoscaler/scaling/autoscaler.go`), as a pure
//! state machine: stable and panic pod counts from observed concurrency (or
//! RPS) over the target, rate limits per tick, panic mode (entered at
//! `panic_threshold` × ready capacity, left a stable window after the surge,
//! never scaling down while in it), the scale-down delay (a sliding maximum),
//! activation scale and excess burst capacity. Replayed against the upstream
//! unit-test table in tests/kpa_cases.rs.

use serde::{Deserialize, Serialize};

/// The decider's spec (as `DeciderSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeciderSpec {
    pub target_value: f64,
    /// Capacity per pod at 100 % (the tests use target ÷ 0.75).
    pub total_value: f64,
    /// −1: unlimited; 0: none.
    pub target_burst_capacity: f64,
    /// Panic when panic-window load ÷ ready pods ≥ this (a ratio, 2 = 200 %).
    pub panic_threshold: f64,
    pub stable_window_s: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub scale_down_delay_s: f64,
    pub reachable: bool,
    pub activation_scale: i32,
}

impl Default for DeciderSpec {
    fn default() -> Self {
        DeciderSpec {
            target_value: 100.0,
            total_value: 100.0 / 0.75,
            target_burst_capacity: 200.0,
            panic_threshold: 2.0,
            stable_window_s: 60.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_down_delay_s: 0.0,
            reachable: true,
            activation_scale: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleResult {
    pub desired: i32,
    pub excess_burst_capacity: i32,
    pub valid: bool,
}

const INVALID: ScaleResult = ScaleResult {
    desired: 0,
    excess_burst_capacity: 0,
    valid: false,
};

/// Knative ticks every 2 s; the delay window keeps one maximum per tick.
pub const TICK_S: f64 = 2.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpa {
    pub spec: DeciderSpec,
    /// When panic mode began (seconds); `None` outside panic mode.
    pub panic_since: Option<f64>,
    pub max_panic_pods: i32,
    /// (tick, max desired in that tick), oldest first.
    delay: Vec<(i64, i32)>,
}

impl Kpa {
    pub fn new(spec: DeciderSpec) -> Self {
        Kpa {
            spec,
            panic_since: None,
            max_panic_pods: 0,
            delay: Vec::new(),
        }
    }

    /// One `Scale()` call at `now_s`. `ready`: the ready pod count (`None`: it
    /// could not be read); `observed`: (stable, panic) values (`None`: no data).
    pub fn scale(
        &mut self,
        now_s: f64,
        ready: Option<u32>,
        observed: Option<(f64, f64)>,
    ) -> ScaleResult {
        let spec = self.spec.clone();
        let Some(original_ready) = ready else {
            return INVALID;
        };
        let Some((stable, panic)) = observed else {
            return INVALID;
        };
        // Zero ready pods count as one.
        let ready = f64::from(original_ready).max(1.0);
        let max_up = (spec.max_scale_up_rate * ready).ceil().max(ready + 1.0);
        let max_down = if spec.reachable {
            (ready / spec.max_scale_down_rate).floor()
        } else {
            0.0
        }
        .min(ready - 1.0);
        let dspc = (stable / spec.target_value).ceil();
        let dppc = (panic / spec.target_value).ceil();
        let mut desired_stable = dspc.max(max_down).min(max_up) as i32;
        let mut desired_panic = dppc.max(max_down).min(max_up) as i32;
        if spec.activation_scale > 1 {
            if dspc > 0.0 && spec.activation_scale > desired_stable {
                desired_stable = spec.activation_scale;
            }
            if dppc > 0.0 && spec.activation_scale > desired_panic {
                desired_panic = spec.activation_scale;
            }
        }
        let over = dppc / ready >= spec.panic_threshold;
        if over {
            // Enter panic, or extend it while the surge lasts.
            self.panic_since = Some(now_s);
        } else if self
            .panic_since
            .is_some_and(|t| t + spec.stable_window_s < now_s)
        {
            // The surge has made its way into the stable window.
            self.panic_since = None;
            self.max_panic_pods = 0;
        }
        let mut desired = desired_stable;
        if self.panic_since.is_some() {
            desired = desired.max(desired_panic);
            // No scale-down while panicking.
            self.max_panic_pods = self.max_panic_pods.max(desired);
            desired = self.max_panic_pods;
        }
        if spec.scale_down_delay_s > 0.0 && spec.reachable {
            let tick = (now_s / TICK_S).floor() as i64;
            match self.delay.last_mut() {
                Some((t, v)) if *t == tick => *v = (*v).max(desired),
                _ => self.delay.push((tick, desired)),
            }
            let oldest = now_s - spec.scale_down_delay_s;
            self.delay.retain(|(t, _)| (*t as f64) * TICK_S > oldest);
            desired = self.delay.iter().map(|(_, v)| *v).max().unwrap_or(desired);
        }
        let ebc = if spec.target_burst_capacity == 0.0 {
            0.0
        } else if spec.target_burst_capacity > 0.0 {
            (f64::from(original_ready) * spec.total_value - spec.target_burst_capacity - panic)
                .floor()
        } else {
            -1.0
        };
        ScaleResult {
            desired,
            excess_burst_capacity: ebc as i32,
            valid: true,
        }
    }
}
