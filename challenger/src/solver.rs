//! The pure core: state in, actions out. No I/O, no clock, no randomness —
//! the shell ([`crate::runner`]) loads state, calls these, and performs the
//! actions (the op-challenger shape: loader → solver → responder).

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};
use verinfer_prover::dispute::DisputeProver;
use verinfer_prover::game::agent::{AgentError, challenger_move};
use verinfer_prover::game::tx::Tx;
use verinfer_prover::game::types::Side;
use verinfer_prover::game::view::{GameView, ResolutionReason};
use verinfer_state::hash::Hash32;
use verinfer_state::record::InferenceRecord;

/// What the challenger concluded about one record. Persisted per record so
/// that a restart never re-executes (or re-disputes) a judged record.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Verdict {
    /// Re-execution gave the record's output root.
    Correct,
    /// Not in this challenger's sample.
    NotSampled,
    /// Re-execution disagrees; `game` once the dispute is open. `None` is
    /// the intent written *before* the dispute is sent, so a crash between
    /// sending and recording is reconciled from the referee's game list.
    Wrong {
        /// Our output root.
        ours: Hash32,
        /// The game, once opened.
        game: Option<u64>,
    },
    /// Could not be checked (unknown model, execution failed, inputs that
    /// do not hash to the record); logged, never disputed.
    Unverifiable {
        /// Why.
        reason: String,
    },
    /// Its window closed before it was checked: nothing can be done.
    WindowClosed,
}

impl Verdict {
    /// Short name for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::NotSampled => "not_sampled",
            Verdict::Wrong { .. } => "wrong",
            Verdict::Unverifiable { .. } => "unverifiable",
            Verdict::WindowClosed => "window_closed",
        }
    }
}

/// What to do with a record after (maybe) re-executing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordAction {
    /// Record the verdict; nothing to send.
    Settle(Verdict),
    /// Record `Wrong { game: None }` and open a dispute.
    Dispute {
        /// Our output root.
        ours: Hash32,
    },
}

/// Everything [`judge_record`] looks at.
#[derive(Clone, Debug)]
pub struct RecordFacts<'a> {
    /// The record as committed in the batch.
    pub record: &'a InferenceRecord,
    /// Our re-execution's output root, or why there is none (`None` when
    /// the record was not sampled).
    pub recomputed: Option<Result<Hash32, String>>,
    /// The referee's time (ms) and the batch's window end, if known.
    pub now_ms: u64,
    /// End of the batch's challenge window (ms, referee time).
    pub window_end_ms: Option<u64>,
    /// Forced by configuration (drills): dispute whatever re-execution says.
    pub forced: bool,
}

/// Decides a record: dispute exactly when our re-execution of the
/// committed program on the committed inputs gives another output root and
/// the window is still open.
pub fn judge_record(f: &RecordFacts<'_>) -> RecordAction {
    let open = f.window_end_ms.is_none_or(|end| f.now_ms < end);
    match &f.recomputed {
        None if f.forced && open => RecordAction::Dispute { ours: Hash32::ZERO },
        None => RecordAction::Settle(Verdict::NotSampled),
        Some(Err(reason)) => RecordAction::Settle(Verdict::Unverifiable { reason: reason.clone() }),
        Some(Ok(ours)) => {
            let wrong = *ours != f.record.output_root || f.forced;
            match (wrong, open) {
                (false, _) => RecordAction::Settle(Verdict::Correct),
                (true, true) => RecordAction::Dispute { ours: *ours },
                (true, false) => RecordAction::Settle(Verdict::WindowClosed),
            }
        }
    }
}

/// Whether this challenger re-executes `request_id`: a keyed hash below
/// `rate`. Keyed by `salt` (derived from the secret key) so the sequencer
/// cannot tell which records a challenger checks, and deterministic so a
/// restart samples the same records.
pub fn sampled(salt: &[u8; 32], request_id: &Hash32, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let d = Sha256::new()
        .chain_update(b"verinfer/challenger/sample/v1")
        .chain_update(salt)
        .chain_update(request_id.0)
        .finalize();
    let mut w = [0u8; 8];
    w.copy_from_slice(&d[..8]);
    // Uniform in [0, 1) with 53 bits.
    let x = (u64::from_be_bytes(w) >> 11) as f64 / (1u64 << 53) as f64;
    x < rate
}

/// How a finished game ended for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Outcome {
    /// We won: the record is void and the escrow is ours.
    Won,
    /// We lost our bond.
    Lost,
}

/// What to do next in a game.
#[derive(Clone, Debug, PartialEq)]
pub enum GameAction {
    /// Send this transaction (a move or a timeout claim).
    Send(Box<Tx>),
    /// Nothing to send: the defender is to move and has `defender_left_ms`
    /// on its clock. Poll again (or claim its timeout after that long).
    Wait {
        /// The defender's remaining time at the view's instant.
        defender_left_ms: u64,
    },
    /// Our turn but the honest strategy sees no difference: we were wrong
    /// to dispute (a forced drill, or a bug). Staying silent loses the bond
    /// by timeout, which is the honest outcome.
    Silent,
    /// The game is over.
    Finished {
        /// For us.
        outcome: Outcome,
        /// The referee's reason (for logs).
        reason: ResolutionReason,
    },
}

/// The game solver: view in, action out.
///
/// `honest` is our prover for the record (the committed program on the
/// committed inputs, no fault); it is only read when it is our turn.
pub fn solve_game(view: &GameView, honest: &DisputeProver) -> Result<GameAction, AgentError> {
    if let Some(r) = &view.resolution {
        let outcome = if r.winner == Side::Challenger { Outcome::Won } else { Outcome::Lost };
        return Ok(GameAction::Finished { outcome, reason: r.reason });
    }
    match view.to_move {
        Some(Side::Defender) => {
            // The referee rejects a move at `now ≥ deadline`, and its view
            // reports 0 left from that instant: the timeout is claimable.
            if view.clocks.defender_left_ms == 0 {
                Ok(GameAction::Send(Box::new(Tx::ClaimTimeout { game: view.id })))
            } else {
                Ok(GameAction::Wait { defender_left_ms: view.clocks.defender_left_ms })
            }
        }
        Some(Side::Challenger) => match challenger_move(view, honest)? {
            Some(mv) => Ok(GameAction::Send(Box::new(view.tx(mv)))),
            None => Ok(GameAction::Silent),
        },
        // Neither side to move and no resolution: a view between states;
        // poll again.
        None => Ok(GameAction::Wait { defender_left_ms: view.clocks.defender_left_ms }),
    }
}

/// Ranges `from..=to` of at most `max` numbers covering `first..=last`: the
/// `explorer_batches` calls that catch up a gap. Lazy: `last` is the node's
/// word (a head of `u64::MAX` must not become 10^16 ranges in memory), and
/// the caller stops at the first range the node does not fill.
pub fn catch_up_ranges(first: u64, last: u64, max: u64) -> impl Iterator<Item = (u64, u64)> {
    let max = max.max(1);
    let mut from = Some(first).filter(|&f| f <= last);
    std::iter::from_fn(move || {
        let f = from?;
        let to = last.min(f.saturating_add(max - 1));
        from = (to < last).then(|| to + 1);
        Some((f, to))
    })
}

/// Why one more dispute bond cannot be posted now (see [`can_afford`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The free balance.
    pub free: u64,
    /// The referee's `challenger_bond`.
    pub bond: u64,
    /// Bonds already locked in our open games.
    pub locked: u64,
    /// The `--bond` budget (0: no cap).
    pub budget: u64,
}

impl Shortfall {
    /// The free balance is below the bond.
    pub fn balance_short(&self) -> bool {
        self.free < self.bond
    }

    /// The bond would take the locked total over the `--bond` budget.
    pub fn over_budget(&self) -> bool {
        self.budget > 0 && self.locked.saturating_add(self.bond) > self.budget
    }
}

/// The advice names only the limit that binds: raising `--bond` cannot help
/// an empty account, nor a deposit a full budget.
impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { free, bond, locked, budget } = *self;
        let over = |f: &mut std::fmt::Formatter<'_>| {
            write!(f, "over the --bond budget {budget}")?;
            if locked > 0 {
                write!(f, " ({locked} already locked in open games)")?;
            }
            Ok(())
        };
        match (self.balance_short(), self.over_budget()) {
            (true, false) => {
                write!(
                    f,
                    "balance {free} cannot cover a dispute bond of {bond}; deposit funds (on a dev node: `--dev-faucet`)"
                )
            }
            (false, true) => {
                write!(f, "a dispute bond of {bond} is ")?;
                over(f)?;
                write!(f, "; raise --bond (0: no cap)")
            }
            (true, true) => {
                write!(f, "balance {free} cannot cover a dispute bond of {bond}, which is also ")?;
                over(f)?;
                write!(f, "; deposit funds (on a dev node: `--dev-faucet`) and raise --bond (0: no cap)")
            }
            // Not a shortfall; written for completeness.
            (false, false) => write!(f, "balance {free} covers a dispute bond of {bond}"),
        }
    }
}

/// Whether we can afford one more dispute: the free balance must cover the
/// referee's `challenger_bond`, and the locked total stay within `budget`
/// (0: no budget).
pub fn can_afford(free: u64, challenger_bond: u64, locked: u64, budget: u64) -> Result<(), Shortfall> {
    let s = Shortfall { free, bond: challenger_bond, locked, budget };
    if s.balance_short() || s.over_budget() { Err(s) } else { Ok(()) }
}

/// Why an attempt to open a dispute did not open a game.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisputeFailure {
    /// The free balance (or the `--bond` budget) cannot cover the bond now;
    /// a game of ours ending, or a deposit, may change that.
    Unaffordable,
    /// `max_games` of our games are in play (each holds a prover and its
    /// trace in memory); one of them ending frees a place.
    AtCapacity,
    /// The transaction may not have reached the referee (transport error,
    /// timeout, node restarting): it may or may not have applied.
    SendFailed,
    /// The referee refused it, with its reason.
    Rejected(String),
}

/// Bounds on retrying a dispute in-process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after which we stop (the intent stays recorded; a restart
    /// tries again).
    pub max_attempts: u32,
    /// First delay (ms); doubles per failure.
    pub min_ms: u64,
    /// Longest delay (ms).
    pub max_ms: u64,
}

/// What to do after a failed dispute attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this long.
    RetryIn {
        /// Delay (ms).
        delay_ms: u64,
    },
    /// Stop retrying, for this reason (for the log).
    GiveUp(String),
}

/// Whether and when to retry a dispute after its `attempt`-th failure
/// (1-based), at referee time `now_ms`, for a batch whose window ends at
/// `window_end_ms`.
///
/// A referee rejection is final (the record is already void, the window
/// closed, …) except those that describe a moment, not the record: a nonce
/// mismatch (another sender used our key in between: the next attempt
/// re-reads it), `no batch N` (the node announces a sealed batch before its
/// post reaches the referee, so an early dispute meets it) and a balance
/// that cannot cover the bond yet (a game may end and free it). The other
/// failures (no funds or no free game place yet, a lost send) back off
/// exponentially, never past the window end (the referee
/// would refuse a late dispute): when the window closes before the next
/// backoff, the retry is pulled in to half the time left, and when less
/// than `min_ms` is left there is no point trying.
pub fn dispute_retry(
    policy: &RetryPolicy,
    attempt: u32,
    failure: &DisputeFailure,
    now_ms: u64,
    window_end_ms: Option<u64>,
) -> RetryDecision {
    if let DisputeFailure::Rejected(reason) = failure
        && !transient_rejection(reason)
    {
        return RetryDecision::GiveUp(format!("the referee rejected it: {reason}"));
    }
    if attempt >= policy.max_attempts {
        return RetryDecision::GiveUp(format!("{attempt} attempts failed"));
    }
    let shift = attempt.saturating_sub(1).min(32);
    let backoff = policy.min_ms.saturating_mul(1u64 << shift).min(policy.max_ms.max(policy.min_ms));
    match window_end_ms {
        Some(end) => {
            let left = end.saturating_sub(now_ms);
            if left <= policy.min_ms {
                RetryDecision::GiveUp(format!("the challenge window closes in {left} ms"))
            } else {
                RetryDecision::RetryIn { delay_ms: backoff.min(left / 2).max(1) }
            }
        }
        None => RetryDecision::RetryIn { delay_ms: backoff },
    }
}

/// Referee rejections (`TxError`'s messages) that may not hold a moment
/// later; see [`dispute_retry`].
fn transient_rejection(reason: &str) -> bool {
    let moment =
        reason.starts_with("nonce ") || reason.starts_with("time went backwards") || reason.starts_with("no batch ");
    // `InsufficientBalance`: "<account> has N, needs M".
    moment || (reason.contains(" has ") && reason.contains(", needs "))
}

/// What the referee says of a batch (`settlement_batch`), at its time
/// `now_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchFacts {
    /// The batch is settled: its records are final or void.
    pub settled: bool,
    /// The referee's own word on its window, when it gives one.
    pub window_open: Option<bool>,
    /// When the window closes (ms, referee time), when known.
    pub window_end_ms: Option<u64>,
    /// The referee's time (ms).
    pub now_ms: u64,
}

/// Whether a record of the batch can still be disputed. A batch that is
/// settled, or whose window has closed, cannot: the referee refuses a late
/// `OpenDispute`, so checking its records changes nothing. Such a batch
/// counts as done without its body, which a node may already have pruned.
/// An unknown window counts as open (the referee decides).
pub fn disputable(f: &BatchFacts) -> bool {
    !f.settled && f.window_open != Some(false) && f.window_end_ms.is_none_or(|end| f.now_ms < end)
}

/// What to do when data the referee holds a commitment to (a batch body, a
/// model program) was not served: no answer, an error, or an answer that
/// does not check out against the commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchRetry {
    /// Fetch again after this long.
    RetryIn {
        /// Delay (ms).
        delay_ms: u64,
    },
    /// The window has closed: nothing can be disputed any more, so the
    /// data counts as withheld and its records as unverifiable.
    WindowClosed,
}

/// Whether and when to fetch again after the `attempt`-th failure
/// (1-based), at referee time `now_ms`, for a batch whose window ends at
/// `window_end_ms`.
///
/// A sequencer that withholds the data of a wrong record escapes if the
/// bot gives up while the window is open, so there is no attempt limit:
/// the delay doubles from `min_ms` up to `max_ms`, is cut short so the
/// last attempt falls at the window's end, and only a closed window ends
/// the retries. An unknown window counts as open.
pub fn fetch_retry(attempt: u32, min_ms: u64, max_ms: u64, now_ms: u64, window_end_ms: Option<u64>) -> FetchRetry {
    let shift = attempt.saturating_sub(1).min(32);
    let backoff = min_ms.saturating_mul(1u64 << shift).min(max_ms.max(min_ms)).max(1);
    match window_end_ms {
        Some(end) if now_ms >= end => FetchRetry::WindowClosed,
        Some(end) => FetchRetry::RetryIn { delay_ms: backoff.min(end - now_ms) },
        None => FetchRetry::RetryIn { delay_ms: backoff },
    }
}

/// The game an event notification (`settlement_subscribeEvents`, `{at_ms,
/// event: {event, game, …}}`, or a bare event) is about, if any: players
/// are woken by the events of their game.
pub fn event_game(note: &serde_json::Value) -> Option<u64> {
    let e = match note.get("event") {
        Some(inner) if inner.is_object() => inner,
        _ => note,
    };
    e.get("game")?.as_u64()
}

/// How long a player waits before reading its game again after `action`,
/// unless an event of its game wakes it first. Events do not announce a
/// clock running out, so while the defender is to move the player also
/// wakes when the defender's clock reaches 0 (to claim the timeout);
/// otherwise `fallback_ms` bounds what a missed event can cost.
pub fn wake_after(action: &GameAction, fallback_ms: u64) -> u64 {
    match action {
        GameAction::Wait { defender_left_ms } => fallback_ms.min((*defender_left_ms).max(1)),
        GameAction::Finished { .. } => 0,
        GameAction::Send(_) | GameAction::Silent => fallback_ms,
    }
}

/// Tracks which batches are fully judged and the contiguous watermark
/// below which every batch is (what the database persists as progress).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every batch ≤ this is done (0: none).
    pub watermark: u64,
    done_above: std::collections::BTreeSet<u64>,
}

impl Progress {
    /// Starting at `watermark`.
    pub fn new(watermark: u64) -> Self {
        Self { watermark, done_above: Default::default() }
    }

    /// Marks `batch` done; returns the new watermark if it moved.
    pub fn done(&mut self, batch: u64) -> Option<u64> {
        if batch <= self.watermark {
            return None;
        }
        self.done_above.insert(batch);
        let before = self.watermark;
        while self.done_above.remove(&(self.watermark + 1)) {
            self.watermark += 1;
        }
        (self.watermark != before).then_some(self.watermark)
    }
}

#[cfg(test)]
mod tests;
