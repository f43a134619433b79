//! Tests of the deployment planner, all pure: `sim` is a small world the
//! scenarios run whole rollouts in, checking Kubernetes' rollout bounds at
//! every step; `steps` checks single decisions as tables (many ported from
//! Kubernetes' own tests); `units` checks the helpers.

mod scenarios;
mod sim;
mod steps;
mod units;
