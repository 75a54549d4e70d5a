//! The settlement state machine: accounts, sequencer bonds, batches and
//! their windows, records, and dispute games.
//!
//! Every entry point takes the time `now_ms` as an argument and checks it
//! never goes backwards. A transaction is validated completely before
//! anything is written, so a rejected one changes nothing (not even a clock
//! or a nonce); tests compare the whole borsh encoding before and after.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use verinfer_prover::dispute::StepVerdict;
use verinfer_state::batch::{BatchBody, BatchHeader, FIRST_BATCH, GENESIS_PARENT, verify_inclusion};
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::MerkleProof;
use verinfer_state::receipt::Status;
use verinfer_state::record::InferenceRecord;

use crate::error::TxError;
use crate::event::{Event, Holder};
use crate::game::{Game, MoveRecord, Phase, Resolution, ResolutionReason};
use crate::params::Params;
use crate::tx::{Move, SignedTx, Tx};
use crate::types::{AccountId, Side};

/// An account's free balance and next nonce.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct Account {
    /// Free balance.
    pub free: u64,
    /// Next signed-transaction nonce.
    pub nonce: u64,
}

/// A sequencer's bond and obligations.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct Sequencer {
    /// Locked bond (stakes of open games already moved out of it).
    pub bond: u64,
    /// Games open against it.
    pub open_games: u32,
    /// When the last window of a batch it posted closes.
    pub windows_until_ms: u64,
    /// Batches posted.
    pub batches: u64,
}

/// A posted batch.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct BatchEntry {
    /// The header.
    pub header: BatchHeader,
    /// Its hash.
    pub hash: Hash32,
    /// Who posted it.
    pub sequencer: AccountId,
    /// When it was posted (settlement time).
    pub posted_at_ms: u64,
    /// When its challenge window closes (`posted_at + window`).
    pub window_end_ms: u64,
    /// Games open on its records.
    pub open_games: u32,
    /// Every record is final or void; the body need no longer be served.
    pub settled: bool,
}

/// The dispute history of one record (only records ever disputed have one).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct RecordDisputes {
    /// Every game opened on it.
    pub games: Vec<u64>,
    /// Games still open.
    pub open: u32,
    /// The first game a challenger won: the record is void.
    pub void_by: Option<u64>,
}

/// Value held, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    /// Ever deposited.
    pub deposited: u64,
    /// Ever withdrawn.
    pub withdrawn: u64,
    /// Σ free balances.
    pub free: u64,
    /// Σ sequencer bonds.
    pub bonds: u64,
    /// Σ escrows of open games.
    pub escrow: u64,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No such batch.
    #[error("no batch {0}")]
    UnknownBatch(u64),
    /// No such record.
    #[error("batch {batch} has {count} records, no index {index}")]
    UnknownRecord {
        /// Batch.
        batch: u64,
        /// Index asked.
        index: u64,
        /// Records in it.
        count: u64,
    },
}

/// The whole settlement state. Deterministic, no I/O, no clock; borsh
/// encodes all of it so a host can persist and restore it.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct Settlement {
    params: Params,
    now_ms: u64,
    accounts: BTreeMap<AccountId, Account>,
    sequencers: BTreeMap<AccountId, Sequencer>,
    batches: BTreeMap<u64, BatchEntry>,
    unsettled: BTreeSet<u64>,
    records: BTreeMap<(u64, u64), RecordDisputes>,
    games: BTreeMap<u64, Game>,
    next_game: u64,
    total_deposited: u64,
    total_withdrawn: u64,
}

impl Settlement {
    /// An empty state with `params` (checked).
    pub fn new(params: Params) -> Result<Self, String> {
        params.validate()?;
        Ok(Self {
            params,
            now_ms: 0,
            accounts: BTreeMap::new(),
            sequencers: BTreeMap::new(),
            batches: BTreeMap::new(),
            unsettled: BTreeSet::new(),
            records: BTreeMap::new(),
            games: BTreeMap::new(),
            next_game: 1,
            total_deposited: 0,
            total_withdrawn: 0,
        })
    }

    /// Canonical bytes of the whole state.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("in-memory encoding")
    }

    /// Restores a state from [`Settlement::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, std::io::Error> {
        let s: Self = borsh::from_slice(b)?;
        s.params.validate().map_err(std::io::Error::other)?;
        Ok(s)
    }

    // -----------------------------------------------------------------------
    // Entry points.

    /// Privileged: credits `amount` to `account` from outside (the embedded
    /// deployment's faucet or genesis allocation; a bridge on a chain).
    pub fn deposit(&mut self, account: AccountId, amount: u64) -> Result<Vec<Event>, TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        let total = self.total_deposited.checked_add(amount).ok_or(TxError::Overflow)?;
        let free = self.accounts.get(&account).map_or(0, |a| a.free).checked_add(amount).ok_or(TxError::Overflow)?;
        self.total_deposited = total;
        self.accounts.entry(account).or_default().free = free;
        Ok(vec![Event::Transfer { from: Holder::Outside, to: Holder::Free { account }, amount }])
    }

    /// Applies a signed transaction: signature, nonce, then the transaction.
    pub fn apply_signed(&mut self, now_ms: u64, stx: &SignedTx) -> Result<Vec<Event>, TxError> {
        self.check_time(now_ms)?;
        stx.verify_signature(self.params.chain_id).map_err(|_| TxError::BadSignature)?;
        let expected = self.accounts.get(&stx.signer).map_or(0, |a| a.nonce);
        if stx.nonce != expected {
            return Err(TxError::BadNonce { expected, got: stx.nonce });
        }
        let events = self.apply_tx(now_ms, stx.signer, &stx.tx)?;
        self.accounts.entry(stx.signer).or_default().nonce = expected + 1;
        Ok(events)
    }

    /// Applies `tx` from `sender` without a signature (in-process callers
    /// that authenticated the sender themselves, and tests). No nonce.
    pub fn apply(&mut self, now_ms: u64, sender: AccountId, tx: Tx) -> Result<Vec<Event>, TxError> {
        self.apply_tx(now_ms, sender, &tx)
    }

    /// [`Settlement::apply`] by reference: a `PostBatch`'s body is only
    /// checked, never kept (decision 0012), so it is never copied; cloning
    /// the signed transaction here used to copy every batch's inputs.
    fn apply_tx(&mut self, now_ms: u64, sender: AccountId, tx: &Tx) -> Result<Vec<Event>, TxError> {
        self.check_time(now_ms)?;
        let events = match tx {
            Tx::Withdraw { amount } => self.withdraw(sender, *amount)?,
            Tx::BondSequencer { amount } => self.bond(sender, *amount)?,
            Tx::Unbond => self.unbond(now_ms, sender)?,
            Tx::PostBatch { header, body } => self.post_batch(now_ms, sender, *header, body)?,
            Tx::OpenDispute { batch, index, record, proof } => {
                self.open_dispute(now_ms, sender, *batch, *index, *record, proof.clone())?
            }
            Tx::Move { game, seq, mv } => self.make_move(now_ms, sender, *game, *seq, mv.clone())?,
            Tx::ClaimTimeout { game } => self.claim_timeout(now_ms, *game)?,
        };
        self.now_ms = now_ms;
        Ok(events)
    }

    /// Settles batches whose window has passed with no game open on them:
    /// their records are final (or void) and their bodies need no longer be
    /// served.
    /// Changes no balance; call it whenever convenient.
    pub fn tick(&mut self, now_ms: u64) -> Result<Vec<Event>, TxError> {
        self.check_time(now_ms)?;
        let ready: Vec<u64> = self
            .unsettled
            .iter()
            .copied()
            .filter(|n| self.batches.get(n).is_some_and(|b| now_ms >= b.window_end_ms && b.open_games == 0))
            .collect();
        let mut events = Vec::new();
        for n in ready {
            self.unsettled.remove(&n);
            if let Some(b) = self.batches.get_mut(&n) {
                b.settled = true;
            }
            events.push(Event::BatchSettled { number: n, void: self.void_records(n) });
        }
        self.now_ms = now_ms;
        Ok(events)
    }

    fn check_time(&self, now_ms: u64) -> Result<(), TxError> {
        if now_ms < self.now_ms {
            return Err(TxError::TimeRegression { now_ms, last_ms: self.now_ms });
        }
        Ok(())
    }

    fn free_of(&self, a: &AccountId) -> u64 {
        self.accounts.get(a).map_or(0, |a| a.free)
    }

    fn need_free(&self, account: AccountId, needed: u64) -> Result<(), TxError> {
        let available = self.free_of(&account);
        if available < needed {
            return Err(TxError::InsufficientBalance { account, needed, available });
        }
        Ok(())
    }

    fn withdraw(&mut self, sender: AccountId, amount: u64) -> Result<Vec<Event>, TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        self.need_free(sender, amount)?;
        self.accounts.entry(sender).or_default().free -= amount;
        self.total_withdrawn += amount;
        Ok(vec![Event::Transfer { from: Holder::Free { account: sender }, to: Holder::Outside, amount }])
    }

    fn bond(&mut self, sender: AccountId, amount: u64) -> Result<Vec<Event>, TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        self.need_free(sender, amount)?;
        let bond = self.sequencers.get(&sender).map_or(0, |s| s.bond).checked_add(amount).ok_or(TxError::Overflow)?;
        self.accounts.entry(sender).or_default().free -= amount;
        self.sequencers.entry(sender).or_default().bond = bond;
        Ok(vec![Event::Transfer {
            from: Holder::Free { account: sender },
            to: Holder::Bond { account: sender },
            amount,
        }])
    }

    fn unbond(&mut self, now_ms: u64, sender: AccountId) -> Result<Vec<Event>, TxError> {
        let s = self.sequencers.get(&sender).filter(|s| s.bond > 0).ok_or(TxError::NotSequencer(sender))?;
        if s.open_games > 0 {
            return Err(TxError::UnbondOpenGames { open: s.open_games });
        }
        if now_ms < s.windows_until_ms {
            return Err(TxError::UnbondWindowOpen { until_ms: s.windows_until_ms });
        }
        let amount = s.bond;
        self.sequencers.entry(sender).or_default().bond = 0;
        self.accounts.entry(sender).or_default().free += amount;
        Ok(vec![Event::Transfer {
            from: Holder::Bond { account: sender },
            to: Holder::Free { account: sender },
            amount,
        }])
    }

    fn post_batch(
        &mut self,
        now_ms: u64,
        sender: AccountId,
        header: BatchHeader,
        body: &BatchBody,
    ) -> Result<Vec<Event>, TxError> {
        let s = self.sequencers.get(&sender).filter(|s| s.bond > 0).ok_or(TxError::NotSequencer(sender))?;
        if s.bond < self.params.min_sequencer_bond {
            return Err(TxError::BondBelowMinimum { bond: s.bond, min: self.params.min_sequencer_bond });
        }
        header.validate().map_err(|e| TxError::Body(verinfer_state::batch::BodyError::Header(e)))?;
        let head = self.batches.last_key_value().map(|(_, b)| b);
        let expected = head.map_or(FIRST_BATCH, |b| b.header.number + 1);
        if header.number != expected {
            return Err(TxError::WrongBatchNumber { expected, got: header.number });
        }
        let parent = head.map_or(GENESIS_PARENT, |b| b.hash);
        if header.parent_hash != parent {
            return Err(TxError::WrongParent { expected: parent, got: header.parent_hash });
        }
        if header.sequencer != sender.as_hash() {
            return Err(TxError::WrongSequencer { header: header.sequencer });
        }
        if let Some(h) = head
            && header.timestamp_ms < h.header.timestamp_ms
        {
            return Err(TxError::TimestampBeforeParent { parent: h.header.timestamp_ms, got: header.timestamp_ms });
        }
        body.verify(&header)?;
        let window_end_ms = now_ms.saturating_add(self.params.challenge_window_ms);
        let hash = header.hash();
        let number = header.number;
        self.batches.insert(
            number,
            BatchEntry {
                header,
                hash,
                sequencer: sender,
                posted_at_ms: now_ms,
                window_end_ms,
                open_games: 0,
                settled: false,
            },
        );
        self.unsettled.insert(number);
        let s = self.sequencers.entry(sender).or_default();
        s.windows_until_ms = s.windows_until_ms.max(window_end_ms);
        s.batches += 1;
        Ok(vec![Event::BatchPosted { number, hash, sequencer: sender, records: header.record_count, window_end_ms }])
    }

    fn open_dispute(
        &mut self,
        now_ms: u64,
        sender: AccountId,
        batch: u64,
        index: u64,
        record: InferenceRecord,
        proof: MerkleProof,
    ) -> Result<Vec<Event>, TxError> {
        let b = self.batches.get(&batch).ok_or(TxError::UnknownBatch(batch))?;
        if now_ms >= b.window_end_ms {
            return Err(TxError::WindowClosed { batch, window_end_ms: b.window_end_ms });
        }
        if proof.index != index {
            return Err(TxError::IndexMismatch { proof: proof.index, index });
        }
        verify_inclusion(&b.header, &record, &proof)?;
        if self.records.get(&(batch, index)).is_some_and(|r| r.void_by.is_some()) {
            return Err(TxError::RecordVoid { batch, index });
        }
        let defender = b.sequencer;
        if sender == defender {
            return Err(TxError::SelfDispute);
        }
        let challenger_bond = self.params.challenger_bond;
        self.need_free(sender, challenger_bond)?;
        let defender_stake = self.sequencers.get(&defender).map_or(0, |s| s.bond).min(self.params.defender_stake);

        let id = self.next_game;
        let clock = self.params.clock_ms;
        let game = Game {
            id,
            batch,
            index,
            record,
            challenger: sender,
            defender,
            challenger_bond,
            defender_stake,
            dissection_exp: self.params.dissection_exp,
            clock_ms: clock,
            remaining_ms: [clock, clock],
            turn_started_ms: now_ms,
            opened_at_ms: now_ms,
            phase: Phase::AwaitCommit,
            commit: None,
            node: None,
            element: None,
            states: None,
            transcript: Vec::new(),
            resolution: None,
        };
        self.next_game += 1;
        self.games.insert(id, game);
        self.accounts.entry(sender).or_default().free -= challenger_bond;
        let s = self.sequencers.entry(defender).or_default();
        s.bond -= defender_stake;
        s.open_games += 1;
        if let Some(b) = self.batches.get_mut(&batch) {
            b.open_games += 1;
        }
        let r = self.records.entry((batch, index)).or_default();
        r.games.push(id);
        r.open += 1;
        let mut events = vec![Event::DisputeOpened {
            game: id,
            batch,
            index,
            challenger: sender,
            defender,
            challenger_bond,
            defender_stake,
        }];
        if challenger_bond > 0 {
            events.push(Event::Transfer {
                from: Holder::Free { account: sender },
                to: Holder::Escrow { game: id },
                amount: challenger_bond,
            });
        }
        if defender_stake > 0 {
            events.push(Event::Transfer {
                from: Holder::Bond { account: defender },
                to: Holder::Escrow { game: id },
                amount: defender_stake,
            });
        }
        Ok(events)
    }

    fn open_game(&self, id: u64) -> Result<&Game, TxError> {
        let g = self.games.get(&id).ok_or(TxError::UnknownGame(id))?;
        if g.resolution.is_some() {
            return Err(TxError::GameOver(id));
        }
        Ok(g)
    }

    fn make_move(
        &mut self,
        now_ms: u64,
        sender: AccountId,
        id: u64,
        seq: u32,
        mv: Move,
    ) -> Result<Vec<Event>, TxError> {
        let g = self.open_game(id)?;
        let side = g.side_of(&sender).ok_or(TxError::NotAParty(sender))?;
        let to_move = g.to_move().ok_or(TxError::GameOver(id))?;
        if side != to_move {
            return Err(TxError::NotYourTurn { to_move });
        }
        let expected_seq = g.transcript.len() as u32;
        if seq != expected_seq {
            return Err(TxError::StaleMove { expected: expected_seq, got: seq });
        }
        let deadline_ms = g.deadline_ms().unwrap_or(0);
        if now_ms >= deadline_ms {
            return Err(TxError::ClockExpired { side, deadline_ms });
        }
        let expected = g.phase.awaiting().ok_or(TxError::GameOver(id))?;
        let kind = mv.kind();
        if kind != expected {
            return Err(TxError::WrongMove { expected, got: kind });
        }
        let adv = g.advance(&mv).map_err(|source| TxError::InvalidMove { kind, source })?;

        // Valid: commit.
        let g = self.games.get_mut(&id).expect("checked above");
        let level = g.phase.level();
        let cursor = g.cursor().map(|d| (d.tree, d.level, d.index));
        let elapsed = now_ms - g.turn_started_ms;
        g.remaining_ms[side.idx()] -= elapsed;
        g.turn_started_ms = now_ms;
        let clock_left_ms = g.remaining_ms[side.idx()];
        let bytes = mv.encoded_len();
        g.commit = adv.commit;
        g.node = adv.node;
        g.element = adv.element;
        g.states = adv.states;
        g.transcript.push(MoveRecord { seq, side, at_ms: now_ms, level, cursor, bytes, clock_left_ms, mv });
        let mut events = vec![Event::MoveMade { game: id, seq, side, kind, level, cursor, bytes, clock_left_ms }];
        match adv.end {
            Some((winner, reason, proof)) => {
                let verdict = match &reason {
                    ResolutionReason::StepChecked { verdict } => Some(*verdict),
                    _ => None,
                };
                let pinpoint = g.pinpoint(proof.as_ref(), verdict.as_ref());
                events.extend(self.resolve(now_ms, id, winner, reason, pinpoint));
            }
            None => g.phase = adv.phase,
        }
        Ok(events)
    }

    fn claim_timeout(&mut self, now_ms: u64, id: u64) -> Result<Vec<Event>, TxError> {
        let g = self.open_game(id)?;
        let side = g.to_move().ok_or(TxError::GameOver(id))?;
        let deadline_ms = g.deadline_ms().unwrap_or(0);
        if now_ms < deadline_ms {
            return Err(TxError::ClockRunning { side, deadline_ms });
        }
        let pinpoint = g.pinpoint(None, None);
        let g = self.games.get_mut(&id).expect("checked above");
        g.remaining_ms[side.idx()] = 0;
        g.turn_started_ms = now_ms;
        Ok(self.resolve(now_ms, id, side.other(), ResolutionReason::Timeout { side }, pinpoint))
    }

    /// Ends game `id`: pays the escrow to the winner, releases the record,
    /// voids it when the challenger won.
    fn resolve(
        &mut self,
        now_ms: u64,
        id: u64,
        winner: Side,
        reason: ResolutionReason,
        pinpoint: crate::game::Pinpoint,
    ) -> Vec<Event> {
        let g = self.games.get_mut(&id).expect("resolving a known game");
        g.phase = Phase::Resolved;
        g.resolution = Some(Resolution { winner, reason, at_ms: now_ms, pinpoint: pinpoint.clone() });
        let payout = g.escrow();
        let to = g.account(winner);
        let (batch, index, defender) = (g.batch, g.index, g.defender);
        let mut events = vec![Event::GameResolved { game: id, winner, reason, pinpoint, payout }];
        if payout > 0 {
            self.accounts.entry(to).or_default().free += payout;
            events.push(Event::Transfer {
                from: Holder::Escrow { game: id },
                to: Holder::Free { account: to },
                amount: payout,
            });
        }
        if let Some(s) = self.sequencers.get_mut(&defender) {
            s.open_games -= 1;
        }
        if let Some(b) = self.batches.get_mut(&batch) {
            b.open_games -= 1;
        }
        let r = self.records.entry((batch, index)).or_default();
        r.open -= 1;
        if winner == Side::Challenger && r.void_by.is_none() {
            r.void_by = Some(id);
            events.push(Event::RecordVoided { batch, index, game: id });
        }
        events
    }

    // -----------------------------------------------------------------------
    // Queries.

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The time of the last applied transaction.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// An account (default if never seen).
    pub fn account(&self, a: &AccountId) -> Account {
        self.accounts.get(a).cloned().unwrap_or_default()
    }

    /// Every account.
    pub fn accounts(&self) -> &BTreeMap<AccountId, Account> {
        &self.accounts
    }

    /// A sequencer's record, if it ever bonded.
    pub fn sequencer(&self, a: &AccountId) -> Option<&Sequencer> {
        self.sequencers.get(a)
    }

    /// Every sequencer.
    pub fn sequencers(&self) -> &BTreeMap<AccountId, Sequencer> {
        &self.sequencers
    }

    /// The last posted batch.
    pub fn head(&self) -> Option<&BatchEntry> {
        self.batches.last_key_value().map(|(_, b)| b)
    }

    /// A batch.
    pub fn batch(&self, number: u64) -> Option<&BatchEntry> {
        self.batches.get(&number)
    }

    /// Batches in `range` of numbers.
    pub fn batches(&self, range: impl std::ops::RangeBounds<u64>) -> impl Iterator<Item = &BatchEntry> {
        self.batches.range(range).map(|(_, b)| b)
    }

    /// Must the body of batch `number` still be served (data availability)?
    /// True from posting until the batch settles. The referee checks the
    /// posted body against the header (records root, every input against
    /// its record's `input_root`) and then keeps only that fact: the header
    /// already commits to every byte of the body, so a body anyone serves
    /// later is checkable, and the state does not grow with the inputs
    /// (docs/decisions/0012).
    pub fn body_available(&self, number: u64) -> bool {
        self.batches.get(&number).is_some_and(|b| !b.settled)
    }

    /// Indices of the void records of a batch.
    pub fn void_records(&self, number: u64) -> Vec<u64> {
        self.records
            .range((number, 0)..=(number, u64::MAX))
            .filter(|(_, r)| r.void_by.is_some())
            .map(|(k, _)| k.1)
            .collect()
    }

    /// A record's dispute history, if it was ever disputed.
    pub fn record_disputes(&self, batch: u64, index: u64) -> Option<&RecordDisputes> {
        self.records.get(&(batch, index))
    }

    /// A record's status at `now_ms` (PROTOCOL.md §4 "Finality").
    pub fn record_status(&self, batch: u64, index: u64, now_ms: u64) -> Result<Status, QueryError> {
        let b = self.batches.get(&batch).ok_or(QueryError::UnknownBatch(batch))?;
        if index >= b.header.record_count {
            return Err(QueryError::UnknownRecord { batch, index, count: b.header.record_count });
        }
        let r = self.records.get(&(batch, index));
        Ok(if r.is_some_and(|r| r.void_by.is_some()) {
            Status::Fraudulent
        } else if r.is_some_and(|r| r.open > 0) {
            Status::Disputed
        } else if now_ms >= b.window_end_ms {
            Status::Final
        } else {
            Status::Batched { batch, index }
        })
    }

    /// A game.
    pub fn game(&self, id: u64) -> Option<&Game> {
        self.games.get(&id)
    }

    /// Every game, by id.
    pub fn games(&self) -> impl Iterator<Item = &Game> {
        self.games.values()
    }

    /// Open games.
    pub fn open_games(&self) -> impl Iterator<Item = &Game> {
        self.games.values().filter(|g| g.resolution.is_none())
    }

    /// Open games in which `who` must move now.
    pub fn games_awaiting(&self, who: AccountId) -> impl Iterator<Item = &Game> {
        self.open_games().filter(move |g| g.to_move().is_some_and(|s| g.account(s) == who))
    }

    /// Value held, by kind.
    pub fn totals(&self) -> Totals {
        Totals {
            deposited: self.total_deposited,
            withdrawn: self.total_withdrawn,
            free: self.accounts.values().map(|a| a.free).sum(),
            bonds: self.sequencers.values().map(|s| s.bond).sum(),
            escrow: self.open_games().map(Game::escrow).sum(),
        }
    }

    /// `deposited = withdrawn + free + bonds + escrow`, and the bookkeeping
    /// counters agree with the games.
    pub fn check_conservation(&self) -> Result<(), String> {
        let t = self.totals();
        let held = u128::from(t.withdrawn) + u128::from(t.free) + u128::from(t.bonds) + u128::from(t.escrow);
        if u128::from(t.deposited) != held {
            return Err(format!("value not conserved: {t:?}"));
        }
        for (a, s) in &self.sequencers {
            let open = self.open_games().filter(|g| g.defender == *a).count() as u32;
            if open != s.open_games {
                return Err(format!("sequencer {a:?} counts {} open games, {open} are open", s.open_games));
            }
        }
        for (n, b) in &self.batches {
            let open = self.open_games().filter(|g| g.batch == *n).count() as u32;
            if open != b.open_games {
                return Err(format!("batch {n} counts {} open games, {open} are open", b.open_games));
            }
        }
        Ok(())
    }

    /// Whether a settled verdict is consistent: a record is void exactly
    /// when some game on it was won by the challenger.
    pub fn check_voids(&self) -> Result<(), String> {
        for ((b, i), r) in &self.records {
            let won = r.games.iter().find(|id| {
                self.games.get(id).and_then(|g| g.resolution.as_ref()).is_some_and(|res| res.winner == Side::Challenger)
            });
            if won.is_some() != r.void_by.is_some() {
                return Err(format!("record {b}/{i}: void_by {:?} but challenger wins {:?}", r.void_by, won));
            }
        }
        Ok(())
    }
}

/// The verdict of a checked step, if the game ended by one.
pub fn step_verdict(r: &Resolution) -> Option<StepVerdict> {
    match r.reason {
        ResolutionReason::StepChecked { verdict } => Some(verdict),
        _ => None,
    }
}
