//! Transactions and game moves, and their signed envelope.
//!
//! A [`SignedTx`] is verified by the settlement state machine
//! (`verinfer_settlement::Settlement::apply_signed`): the signature is ed25519
//! (`verify_strict`) over [`SignedTx::signing_bytes`] =
//! `"verinfer/settlement/tx/v1" || chain_id:u64le || borsh(signer, nonce, tx)`,
//! except that a `PostBatch` is signed over its header alone,
//! `"verinfer/settlement/post-batch/v2" || chain_id:u64le || borsh(signer,
//! nonce, header)` (decision 0014: the header commits to every byte of the
//! body, and the referee rejects a body that does not match it, so hashing
//! tens of megabytes of inputs into each signature bought nothing; the full
//! form stays valid for batches signed before). `nonce` must equal the
//! signer's next nonce. A nonce is consumed only by a transaction that
//! applies; a rejected one changes nothing, its nonce included.

use crate::dispute::{NodeReveal, OneStep, StatesCommit, TraceCommit};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use verinfer_state::batch::{BatchBody, BatchHeader};
use verinfer_state::hash::Hash32;
use verinfer_state::merkle::MerkleProof;
use verinfer_state::record::InferenceRecord;

use super::types::{AccountId, Side, Sig64};

/// One move of a dispute game (`docs/dispute-game.md#levels`).
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Move {
    /// Defender, level 2: the trace root and its bindings to the record.
    Commit(TraceCommit),
    /// Defender, any dissection: the nodes `min(D, level)` levels below the
    /// cursor (one node, the leaf, for a one-leaf tree).
    Reveal {
        /// The revealed nodes, left to right.
        nodes: Vec<Hash32>,
    },
    /// Challenger, any dissection: the child (position in the last reveal)
    /// it disputes.
    Pick {
        /// Position in the revealed list.
        child: u32,
    },
    /// Defender, level 4: the pinned trace leaf's node, types and evidence.
    NodeReveal(NodeReveal),
    /// Defender, level 5: the bytes of the pinned chunk.
    ChunkReveal {
        /// The chunk.
        bytes: Vec<u8>,
    },
    /// Challenger, level 5: the element of the revealed chunk it disputes.
    PickElement {
        /// Element offset within the chunk.
        offset: u64,
    },
    /// Defender, level 6: the fold states of the pinned element.
    StatesCommit(StatesCommit),
    /// Defender, level 7: the one-step proof of the pinned micro-step.
    OneStep(OneStep),
}

/// The kind of a move, for errors, events and views.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// [`Move::Commit`].
    Commit,
    /// [`Move::Reveal`].
    Reveal,
    /// [`Move::Pick`].
    Pick,
    /// [`Move::NodeReveal`].
    NodeReveal,
    /// [`Move::ChunkReveal`].
    ChunkReveal,
    /// [`Move::PickElement`].
    PickElement,
    /// [`Move::StatesCommit`].
    StatesCommit,
    /// [`Move::OneStep`].
    OneStep,
}

impl MoveKind {
    /// The side that makes moves of this kind.
    pub fn side(self) -> Side {
        match self {
            MoveKind::Pick | MoveKind::PickElement => Side::Challenger,
            _ => Side::Defender,
        }
    }
}

impl Move {
    /// Its kind.
    pub fn kind(&self) -> MoveKind {
        match self {
            Move::Commit(_) => MoveKind::Commit,
            Move::Reveal { .. } => MoveKind::Reveal,
            Move::Pick { .. } => MoveKind::Pick,
            Move::NodeReveal(_) => MoveKind::NodeReveal,
            Move::ChunkReveal { .. } => MoveKind::ChunkReveal,
            Move::PickElement { .. } => MoveKind::PickElement,
            Move::StatesCommit(_) => MoveKind::StatesCommit,
            Move::OneStep(_) => MoveKind::OneStep,
        }
    }

    /// Size of its borsh encoding (what the side sends).
    pub fn encoded_len(&self) -> u64 {
        borsh::to_vec(self).map(|v| v.len() as u64).unwrap_or(0)
    }
}

/// A settlement transaction.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tx {
    /// Moves `amount` out of the sender's free balance (to the bridge).
    Withdraw {
        /// Amount.
        amount: u64,
    },
    /// Locks `amount` of the free balance into the sender's sequencer bond
    /// (creating or topping it up).
    BondSequencer {
        /// Amount.
        amount: u64,
    },
    /// Returns the whole sequencer bond to the free balance; only with no
    /// open game against the sender and every batch it posted past its window.
    Unbond,
    /// Posts the next batch: header and body (data availability).
    PostBatch {
        /// The header.
        header: BatchHeader,
        /// The body it commits to (in JSON: hex of its borsh encoding).
        #[serde(with = "super::types::borsh_hex")]
        body: BatchBody,
    },
    /// Opens a dispute game on one record of a batch, locking the
    /// challenger bond (`docs/dispute-game.md` level 1).
    OpenDispute {
        /// Batch number.
        batch: u64,
        /// Record index in the batch.
        index: u64,
        /// The record.
        record: InferenceRecord,
        /// Its inclusion proof against the batch's records root.
        proof: MerkleProof,
    },
    /// A move in game `game`; `seq` is the number of moves the game has seen
    /// (so a retried or stale move never lands at another position).
    Move {
        /// Game id.
        game: u64,
        /// Moves made so far in the game.
        seq: u32,
        /// The move.
        mv: Move,
    },
    /// Resolves `game` against the side to move, whose clock ran out.
    /// Anyone may send it.
    ClaimTimeout {
        /// Game id.
        game: u64,
    },
}

impl Tx {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Tx::Withdraw { .. } => "withdraw",
            Tx::BondSequencer { .. } => "bond_sequencer",
            Tx::Unbond => "unbond",
            Tx::PostBatch { .. } => "post_batch",
            Tx::OpenDispute { .. } => "open_dispute",
            Tx::Move { .. } => "move",
            Tx::ClaimTimeout { .. } => "claim_timeout",
        }
    }
}

/// The prefix of every signed message but a `PostBatch`'s.
pub const TX_SIGNING_TAG: &[u8] = b"verinfer/settlement/tx/v1";

/// The prefix of a `PostBatch`'s signed message (header only).
pub const POST_BATCH_SIGNING_TAG: &[u8] = b"verinfer/settlement/post-batch/v2";

/// A transaction signed by its sender.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct SignedTx {
    /// The sender (its public key).
    pub signer: AccountId,
    /// The sender's next nonce.
    pub nonce: u64,
    /// The transaction.
    pub tx: Tx,
    /// ed25519 signature over [`SignedTx::signing_bytes`].
    pub signature: Sig64,
}

impl SignedTx {
    /// The bytes signed: for a `PostBatch`, its tag, the chain id and borsh
    /// of `(signer, nonce, header)`; for any other transaction
    /// [`SignedTx::full_signing_bytes`].
    pub fn signing_bytes(chain_id: u64, signer: &AccountId, nonce: u64, tx: &Tx) -> Vec<u8> {
        match tx {
            Tx::PostBatch { header, .. } => {
                let mut out = Vec::with_capacity(POST_BATCH_SIGNING_TAG.len() + 8 + 32 + 8 + 160);
                out.extend_from_slice(POST_BATCH_SIGNING_TAG);
                out.extend_from_slice(&chain_id.to_le_bytes());
                borsh::to_writer(&mut out, &(signer, nonce, header)).expect("in-memory encoding");
                out
            }
            _ => Self::full_signing_bytes(chain_id, signer, nonce, tx),
        }
    }

    /// The v1 message: tag, chain id, borsh of `(signer, nonce, tx)`, a
    /// `PostBatch`'s body included. Every transaction but a `PostBatch` is
    /// signed over it; a `PostBatch` signed this way (before decision 0014)
    /// still verifies, so settlement logs replay unchanged.
    pub fn full_signing_bytes(chain_id: u64, signer: &AccountId, nonce: u64, tx: &Tx) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(TX_SIGNING_TAG);
        out.extend_from_slice(&chain_id.to_le_bytes());
        borsh::to_writer(&mut out, &(signer, nonce, tx)).expect("in-memory encoding");
        out
    }

    /// Signs `tx` with `key` for `chain_id`.
    pub fn sign(key: &SigningKey, chain_id: u64, nonce: u64, tx: Tx) -> Self {
        let signer = AccountId::of_key(&key.verifying_key());
        let sig = key.sign(&Self::signing_bytes(chain_id, &signer, nonce, &tx));
        Self { signer, nonce, tx, signature: Sig64(sig.to_bytes()) }
    }

    /// Checks the signature (strict: no malleable or small-order keys).
    pub fn verify_signature(&self, chain_id: u64) -> Result<(), BadSignature> {
        let key = VerifyingKey::from_bytes(&self.signer.0).map_err(|_| BadSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        if key.verify_strict(&Self::signing_bytes(chain_id, &self.signer, self.nonce, &self.tx), &sig).is_ok() {
            return Ok(());
        }
        // A batch signed over its body (v1). The body is checked against the
        // header either way, so both messages attest to the same batch.
        if matches!(self.tx, Tx::PostBatch { .. }) {
            return key
                .verify_strict(&Self::full_signing_bytes(chain_id, &self.signer, self.nonce, &self.tx), &sig)
                .map_err(|_| BadSignature);
        }
        Err(BadSignature)
    }
}

/// A signature that does not verify (or a signer that is not a valid
/// ed25519 key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad signature")]
pub struct BadSignature;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_chain_signer_nonce_and_payload() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let stx = SignedTx::sign(&key, 5, 3, Tx::Withdraw { amount: 9 });
        stx.verify_signature(5).expect("valid");
        assert_eq!(stx.verify_signature(6), Err(BadSignature));
        let mut t = stx.clone();
        t.nonce = 4;
        assert_eq!(t.verify_signature(5), Err(BadSignature));
        let mut t = stx.clone();
        t.signature.0[0] ^= 1;
        assert_eq!(t.verify_signature(5), Err(BadSignature));
        let bytes = SignedTx::signing_bytes(5, &stx.signer, 3, &stx.tx);
        assert!(bytes.starts_with(TX_SIGNING_TAG));
        assert_eq!(&bytes[TX_SIGNING_TAG.len()..TX_SIGNING_TAG.len() + 8], &5u64.to_le_bytes());
        // Borsh round trip of the envelope.
        let enc = borsh::to_vec(&stx).expect("enc");
        assert_eq!(borsh::from_slice::<SignedTx>(&enc).expect("dec"), stx);
    }

    #[test]
    fn move_kinds_name_their_side() {
        assert_eq!(Move::Pick { child: 0 }.kind().side(), Side::Challenger);
        assert_eq!(Move::PickElement { offset: 0 }.kind().side(), Side::Challenger);
        assert_eq!(Move::Reveal { nodes: vec![] }.kind().side(), Side::Defender);
        assert_eq!(Move::ChunkReveal { bytes: vec![] }.kind(), MoveKind::ChunkReveal);
    }
}
