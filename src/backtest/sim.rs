//! The simulated orchestrator of a backtest, and the accounting of how well a
//! policy's instances met the recorded demand.
//!
//! Instances start `startup` after they are asked for and then serve up to
//! `capacity` requests/s each; scaling down stops the newest first (the ones
//! not ready yet before any ready one). Demand is constant within a window
//! (its recorded rate); the accounting integrates second by second.

use serde::Serialize;

use crate::time::NANOS_PER_SEC;

#[derive(Debug, Clone, Copy)]
pub struct SimSettings {
    /// From "scale to N" to the new instance serving, ns.
    pub startup_ns: i64,
    /// Requests/s one ready instance serves.
    pub capacity_rps: f64,
    /// Only what happens from here on is scored (before it: training).
    pub score_from_ns: i64,
}

/// The instances of one app: when each becomes ready (ns), oldest first.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    ready_at: Vec<i64>,
}

impl Cluster {
    /// `n` instances ready from the start.
    pub fn with_ready(n: u32) -> Self {
        Cluster {
            ready_at: vec![i64::MIN; n as usize],
        }
    }

    pub fn len(&self) -> u32 {
        self.ready_at.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.ready_at.is_empty()
    }

    pub fn ready(&self, at_ns: i64) -> u32 {
        self.ready_at.iter().filter(|&&r| r <= at_ns).count() as u32
    }

    /// Scales to `n` at `now_ns`.
    pub fn scale_to(&mut self, n: u32, now_ns: i64, startup_ns: i64) {
        let n = n as usize;
        if n > self.ready_at.len() {
            self.ready_at.resize(n, now_ns.saturating_add(startup_ns));
        } else {
            // Newest (latest ready time) go first.
            self.ready_at.sort_unstable();
            self.ready_at.truncate(n);
        }
    }
}

/// One second-resolution sample for plots.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the start of the input.
    pub t: f64,
    pub demand_rps: f64,
    pub instances: u32,
    pub ready: u32,
}

/// What one policy did over the whole input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Σ instances × seconds (every instance asked for costs from the moment it is asked for).
    pub instance_seconds: f64,
    /// Σ max(0, demand ÷ capacity − ready) × seconds.
    pub under_provisioned_instance_seconds: f64,
    /// Σ max(0, ready − demand ÷ capacity) × seconds.
    pub over_provisioned_instance_seconds: f64,
    /// Requests that arrived above the ready capacity.
    pub requests_over_capacity: f64,
    /// Decisions that changed the count.
    pub scale_actions: u32,
    /// Per load step: seconds from its start until ready capacity met demand
    /// (`None`: never within the input).
    pub step_response_s: Vec<Option<f64>>,
    #[serde(skip)]
    pub points: Vec<Point>,
    /// Predictive policies: the forecast rate for each window end + lead
    /// time (seconds since the input's start, req/s), for plots.
    #[serde(skip)]
    pub forecasts: Vec<(f64, f64)>,
    /// Predictive policies: the forecast's wMAPE at the lead time at the end
    /// of the input, or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_wmape: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_refused: Option<String>,
    /// The decisions that changed the count, with their reasons.
    #[serde(skip)]
    pub decisions: Vec<crate::model::Decision>,
    /// Load steps still waiting for capacity: their start (s since input start).
    #[serde(skip)]
    open_steps: Vec<(usize, f64)>,
    #[serde(skip)]
    last_demand: Option<f64>,
}

impl Tally {
    /// Starts the window beginning `t0_s` seconds into the input, whose mean
    /// demand is `demand_rps` (load steps are told apart per window).
    pub fn begin_window(&mut self, sim: &SimSettings, t0_s: f64, demand_rps: f64) {
        // A load step: demand up by half and by at least one instance's worth.
        if let Some(prev) = self.last_demand
            && demand_rps > prev * 1.5
            && demand_rps - prev >= sim.capacity_rps
        {
            self.step_response_s.push(None);
            self.open_steps.push((self.step_response_s.len() - 1, t0_s));
        }
        self.last_demand = Some(demand_rps);
    }

    /// Accounts for the second starting at `at_ns` (`t_s` seconds into the
    /// input) with `demand_rps`.
    pub fn second(
        &mut self,
        cluster: &Cluster,
        sim: &SimSettings,
        at_ns: i64,
        t_s: f64,
        demand_rps: f64,
    ) {
        let needed = demand_rps / sim.capacity_rps;
        let ready = cluster.ready(at_ns);
        let n = cluster.len();
        self.instance_seconds += f64::from(n);
        let gap = needed - f64::from(ready);
        if gap > 0.0 {
            self.under_provisioned_instance_seconds += gap;
            self.requests_over_capacity += gap * sim.capacity_rps;
        } else {
            self.over_provisioned_instance_seconds -= gap;
            for (i, since) in self.open_steps.drain(..) {
                self.step_response_s[i] = Some(t_s - since);
            }
        }
        self.points.push(Point {
            t: t_s,
            demand_rps,
            instances: n,
            ready,
        });
    }

    /// Keeps `d` when it changed the count (keeps say little and are many).
    pub fn record(&mut self, d: crate::model::Decision) {
        if d.desired != d.current {
            self.decisions.push(d);
        }
    }

    /// Accounts for the window `[start_ns, end_ns)` with a constant `demand_rps`.
    pub fn window(
        &mut self,
        cluster: &Cluster,
        sim: &SimSettings,
        origin_ns: i64,
        start_ns: i64,
        end_ns: i64,
        demand_rps: f64,
    ) {
        let t0 = (start_ns - origin_ns) as f64 / NANOS_PER_SEC as f64;
        self.begin_window(sim, t0, demand_rps);
        let secs = ((end_ns - start_ns) / NANOS_PER_SEC).max(1);
        for s in 0..secs {
            self.second(
                cluster,
                sim,
                start_ns + s * NANOS_PER_SEC,
                t0 + s as f64,
                demand_rps,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SEC;

    #[test]
    fn new_instances_serve_after_the_startup_and_the_newest_go_first() {
        let mut c = Cluster::with_ready(2);
        c.scale_to(5, 100 * S, 30 * S);
        assert_eq!((c.len(), c.ready(129 * S), c.ready(130 * S)), (5, 2, 5));
        // Down to 3: the two still starting go, the ready ones stay.
        c.scale_to(3, 110 * S, 30 * S);
        assert_eq!((c.len(), c.ready(110 * S), c.ready(200 * S)), (3, 2, 3));
    }

    #[test]
    fn accounting_integrates_second_by_second() {
        let sim = SimSettings {
            startup_ns: 5 * S,
            capacity_rps: 50.0,
            score_from_ns: i64::MIN,
        };
        let mut c = Cluster::with_ready(1);
        c.scale_to(2, 0, 5 * S);
        let mut t = Tally::default();
        // 100 req/s = 2 instances' worth; the second is ready after 5 s.
        t.window(&c, &sim, 0, 0, 10 * S, 100.0);
        assert_eq!(t.instance_seconds, 20.0);
        assert_eq!(t.under_provisioned_instance_seconds, 5.0);
        assert_eq!(t.requests_over_capacity, 250.0);
        assert_eq!(t.over_provisioned_instance_seconds, 0.0);
        assert_eq!(t.points.len(), 10);
        // A load step (×6) at 10 s; capacity asked for at 12 s serves from 17 s.
        let mut c = Cluster::with_ready(1);
        let mut t = Tally::default();
        t.window(&c, &sim, 0, 0, 10 * S, 25.0);
        c.scale_to(2, 10 * S, 5 * S);
        t.window(&c, &sim, 0, 10 * S, 20 * S, 150.0);
        assert_eq!(
            t.step_response_s,
            vec![None],
            "two instances are not enough"
        );
        c.scale_to(4, 22 * S, 5 * S);
        t.window(&c, &sim, 0, 20 * S, 30 * S, 150.0);
        assert_eq!(t.step_response_s, vec![Some(17.0)]);
    }
}
