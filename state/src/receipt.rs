//! Receipts: what the node tells a user about a request.
//!
//! A request is `Pending` from acceptance until its batch is sealed, then
//! `Batched` with its position and inclusion proof; the settlement layer
//! later moves it to `Final`, or through `Disputed` to `Fraudulent` (or back
//! to `Batched` when the defender wins and the window is still open).
//!
//! ```text
//! Pending ──seal──▶ Batched ──▶ Final
//!                     │  ▲        ▲
//!                     ▼  │        │
//!                   Disputed ─────┘
//!                     │
//!                     ▼
//!                 Fraudulent
//! ```
//!
//! ## Invariants
//! * A receipt has an inclusion proof exactly when its status is not
//!   `Pending`, and a `Batched` status names the same batch and index as the
//!   proof. Enforced at decode time.
//! * [`Status`]'s variant order is part of the encoding: never reorder.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::batch::Inclusion;
use crate::codec::Malformed;
use crate::hash::Hash32;
use crate::versioned_message;

/// Where a request stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Accepted and durable in the pending log; not yet in a batch.
    Pending,
    /// In batch `batch` at leaf `index`; its challenge window is open.
    Batched {
        /// Batch number.
        batch: u64,
        /// Leaf index.
        index: u64,
    },
    /// The window passed with no successful challenge.
    Final,
    /// A dispute game on this record is open.
    Disputed,
    /// A challenger proved the record wrong; it is void.
    Fraudulent,
}

impl Status {
    /// May a record in state `self` move to `next` by a settlement update?
    /// (`Pending → Batched` happens only by sealing.) Repeating the current
    /// status is allowed, so replayed updates are harmless.
    pub fn can_become(&self, next: &Status) -> bool {
        use Status::*;
        if self == next {
            return !matches!(self, Pending);
        }
        match (self, next) {
            (Batched { .. }, Disputed | Final) => true,
            (Disputed, Final | Fraudulent) => true,
            // The defender won while the window is still open.
            (Disputed, Batched { .. }) => true,
            _ => false,
        }
    }

    /// Short name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Batched { .. } => "batched",
            Status::Final => "final",
            Status::Disputed => "disputed",
            Status::Fraudulent => "fraudulent",
        }
    }
}

versioned_message! {
    /// A request's receipt.
    #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct Receipt (name = "Receipt", version = 1, check = check_receipt) {
        /// The request.
        pub request_id: Hash32,
        /// Where it stands.
        pub status: Status,
        /// Its batch and inclusion proof, once batched.
        pub inclusion: Option<Inclusion>,
    }
}

fn check_receipt(r: &Receipt) -> Result<(), Malformed> {
    match (&r.status, &r.inclusion) {
        (Status::Pending, None) => Ok(()),
        (Status::Pending, Some(_)) => Err(Malformed::Invariant("pending receipt with a proof")),
        (_, None) => Err(Malformed::Invariant("batched receipt without a proof")),
        (Status::Batched { batch, index }, Some(inc)) => {
            if *batch == inc.batch && *index == inc.index() {
                Ok(())
            } else {
                Err(Malformed::Invariant("batched status disagrees with its proof"))
            }
        }
        (_, Some(_)) => Ok(()),
    }
}

impl Receipt {
    /// A pending receipt.
    pub fn pending(request_id: Hash32) -> Self {
        Self { request_id, status: Status::Pending, inclusion: None }
    }

    /// A batched receipt.
    pub fn batched(request_id: Hash32, inclusion: Inclusion) -> Self {
        Self {
            request_id,
            status: Status::Batched { batch: inclusion.batch, index: inclusion.index() },
            inclusion: Some(inclusion),
        }
    }

    /// Checks the invariants decoding enforces.
    pub fn validate(&self) -> Result<(), Malformed> {
        check_receipt(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DecodeError, decode, encode};
    use crate::merkle::MerkleProof;

    fn inc(batch: u64, index: u64) -> Inclusion {
        Inclusion { batch, proof: MerkleProof { index, leaf_count: 4, path: vec![Hash32([1; 32])] } }
    }

    #[test]
    fn receipt_invariants() {
        let id = Hash32([9; 32]);
        let p = Receipt::pending(id);
        assert_eq!(decode::<Receipt>(&encode(&p)).unwrap(), p);
        let b = Receipt::batched(id, inc(3, 2));
        assert_eq!(decode::<Receipt>(&encode(&b)).unwrap(), b);
        let mut bad = b.clone();
        bad.status = Status::Batched { batch: 3, index: 1 };
        assert!(matches!(decode::<Receipt>(&encode(&bad)), Err(DecodeError::Malformed { .. })));
        let mut bad = p.clone();
        bad.status = Status::Final;
        assert!(bad.validate().is_err());
        let mut fin = b.clone();
        fin.status = Status::Final;
        assert_eq!(decode::<Receipt>(&encode(&fin)).unwrap(), fin);
    }

    #[test]
    fn transitions() {
        let b = Status::Batched { batch: 1, index: 0 };
        assert!(b.can_become(&Status::Disputed));
        assert!(b.can_become(&Status::Final));
        assert!(!b.can_become(&Status::Fraudulent));
        assert!(Status::Disputed.can_become(&Status::Fraudulent));
        assert!(Status::Disputed.can_become(&b));
        assert!(!Status::Final.can_become(&Status::Disputed));
        assert!(!Status::Fraudulent.can_become(&Status::Final));
        assert!(!Status::Pending.can_become(&b));
        assert!(!Status::Pending.can_become(&Status::Pending));
        assert!(Status::Final.can_become(&Status::Final));
    }
}
