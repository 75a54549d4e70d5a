//! Game and settlement parameters (`docs/dispute-game.md#parameters`).

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest dissection exponent accepted (`2^8 = 256` hashes per reveal, 8 KiB).
pub const MAX_DISSECTION_EXP: u32 = 8;

/// Configuration of one settlement instance. Fixed at construction; a game
/// copies the clock and the degree it was opened with.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Params {
    /// Domain of signed transactions: a signature for one instance never
    /// verifies on another.
    pub chain_id: u64,
    /// Challenge window of a batch, from its posting (ms).
    pub challenge_window_ms: u64,
    /// Chess clock of each side for a whole game (ms).
    pub clock_ms: u64,
    /// Bond a sequencer must hold to post.
    pub min_sequencer_bond: u64,
    /// Bond a challenger locks to open a game.
    pub challenger_bond: u64,
    /// Stake moved from the sequencer's bond into each game's escrow.
    pub defender_stake: u64,
    /// Dissection exponent `D` (degree `2^D`), `1..=MAX_DISSECTION_EXP`.
    pub dissection_exp: u32,
}

impl Params {
    /// The embedded development deployment: short window and clocks.
    pub fn dev() -> Self {
        Self {
            chain_id: 0x7665_7269_6465_7600, // "verideV\0"
            challenge_window_ms: 120_000,
            clock_ms: 60_000,
            min_sequencer_bond: 1_000,
            challenger_bond: 100,
            defender_stake: 100,
            dissection_exp: 4,
        }
    }

    /// Production defaults: a week's window, three days per side.
    pub fn production() -> Self {
        Self {
            chain_id: 0x7665_7269_6e66_0001,
            challenge_window_ms: 7 * 24 * 3_600_000,
            clock_ms: 3 * 24 * 3_600_000,
            min_sequencer_bond: 1_000_000,
            challenger_bond: 100_000,
            defender_stake: 100_000,
            dissection_exp: 4,
        }
    }

    /// These parameters with dissection degree `2^d`.
    pub fn with_dissection_exp(mut self, d: u32) -> Self {
        self.dissection_exp = d;
        self
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.dissection_exp == 0 || self.dissection_exp > MAX_DISSECTION_EXP {
            return Err(format!("dissection exponent {} outside 1..={MAX_DISSECTION_EXP}", self.dissection_exp));
        }
        if self.clock_ms == 0 {
            return Err("clock of 0 ms".into());
        }
        if self.challenge_window_ms == 0 {
            return Err("challenge window of 0 ms".into());
        }
        if self.min_sequencer_bond == 0 {
            return Err("minimum sequencer bond of 0".into());
        }
        // Free disputes would let anyone open games without end, each one
        // escrowing a defender stake and taking the defender's time.
        if self.challenger_bond == 0 {
            return Err("challenger bond of 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec_table() {
        let d = Params::dev();
        assert_eq!((d.challenge_window_ms, d.clock_ms), (120_000, 60_000));
        assert_eq!((d.min_sequencer_bond, d.challenger_bond, d.defender_stake, d.dissection_exp), (1_000, 100, 100, 4));
        let p = Params::production();
        assert_eq!((p.challenge_window_ms, p.clock_ms), (604_800_000, 259_200_000));
        assert_eq!(
            (p.min_sequencer_bond, p.challenger_bond, p.defender_stake, p.dissection_exp),
            (1_000_000, 100_000, 100_000, 4)
        );
        assert_ne!(d.chain_id, p.chain_id);
        d.validate().expect("dev");
        p.validate().expect("production");
        assert!(Params::dev().with_dissection_exp(0).validate().is_err());
        assert!(Params::dev().with_dissection_exp(9).validate().is_err());
        assert_eq!(Params { challenger_bond: 0, ..Params::dev() }.validate(), Err("challenger bond of 0".into()));
    }
}
