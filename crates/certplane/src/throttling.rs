//! The throttling flags of `serve`: whether the clouds' per-principal, per-action rate limits
//! apply, and overrides of their defaults. Named plainly (`throttle`, `throttle-rate`) so the
//! config file's generic flag-to-key mapping covers them (`throttle = "off"`,
//! `throttle-rate = ["iot:*=50"]`).

use certplane_core::throttle::{Override, Throttle};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleMode {
    On,
    Off,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ThrottleArgs {
    /// Rate-limit each caller (account + user; in --dev the access key) per action at the
    /// clouds' published rates, answering each cloud's throttling error. Default: on, and off
    /// with --dev (an emulator, like moto, does not throttle unless asked). Limits are per node.
    #[arg(long, value_enum)]
    pub throttle: Option<ThrottleMode>,
    /// Overrides one action's rate: ACTION=RATE[:BURST] (calls per second, may be fractional;
    /// BURST defaults to one second's worth) or ACTION=off. ACTION is `iot:<Operation>`,
    /// `cas:<Action>`, `onsmqtt:<Action>`, `billing:read` or `billing:write`; a trailing `*`
    /// matches a prefix (`iot:*`), `*` every action; the most specific match wins. Repeatable.
    #[arg(long = "throttle-rate", value_name = "ACTION=RATE[:BURST]", value_parser = Override::parse)]
    pub throttle_rate: Vec<Override>,
}

impl ThrottleArgs {
    /// The node's buckets for these flags.
    pub fn build(&self, dev: bool) -> Throttle {
        let on = match self.throttle {
            Some(ThrottleMode::On) => true,
            Some(ThrottleMode::Off) => false,
            None => !dev,
        };
        if !on {
            if !self.throttle_rate.is_empty() {
                tracing::warn!("--throttle-rate is ignored: throttling is off");
            }
            return Throttle::disabled();
        }
        tracing::info!(
            overrides = self.throttle_rate.len(),
            "throttling on (per node)"
        );
        Throttle::new(self.throttle_rate.clone())
    }
}
