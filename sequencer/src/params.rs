//! Names for positional and named parameters in INVALID_PARAMS errors.
//!
//! jsonrpsee parses a method's parameters one after another and reports
//! serde's message for the first that fails, with a position relative to
//! that parameter alone: `explorer_batches ["1", 2]` says `invalid type:
//! string "1", expected u64 at line 1 column 3`, which does not say which
//! of `from` and `to` is wrong. [`locate`] finds the parameter again by
//! re-checking each against its type, so the error can say
//! `explorer_batches params: from: invalid type: …`.
//!
//! Methods whose one parameter is a request object (`model_register`,
//! `infer_submit`) are not listed: their errors already carry a field path
//! (`inputs[0].shape`, from the `path_errors!` wrappers in `verinfer_rpc`).
//!
//! Subscriptions are listed apart ([`SUBSCRIPTIONS`]): jsonrpsee sends a
//! subscription's rejection to the socket itself, past the middleware, so
//! the middleware checks their parameters *before* the call and answers a
//! bad one in the same words as an ordinary method's.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use verinfer_rpc::types::{GamesFilter, RecordOptions};
use verinfer_state::hash::Hash32;

/// Checks one parameter's JSON against its type.
pub type Check = fn(&RawValue) -> Result<(), serde_json::Error>;

fn check<T: DeserializeOwned>(v: &RawValue) -> Result<(), serde_json::Error> {
    serde_json::from_str::<T>(v.get()).map(|_| ())
}

/// Every method with scalar parameters: its parameter names in order, and
/// their types (as in the `verinfer_rpc::api` traits; a test checks the
/// names cover exactly the served methods that take parameters).
pub const METHODS: &[(&str, &[(&str, Check)])] = &[
    ("model_get", &[("model_id", check::<Hash32>)]),
    ("model_program", &[("model_id", check::<Hash32>)]),
    ("infer_receipt", &[("request_id", check::<Hash32>)]),
    ("explorer_batch", &[("number", check::<u64>)]),
    ("explorer_batches", &[("from", check::<u64>), ("to", check::<u64>)]),
    ("explorer_batchBody", &[("number", check::<u64>)]),
    ("explorer_record", &[("request_id", check::<Hash32>), ("options", check::<Option<RecordOptions>>)]),
    ("settlement_account", &[("account", check::<String>)]),
    ("settlement_submitTx", &[("signed_tx_hex", check::<String>)]),
    ("settlement_batch", &[("number", check::<u64>)]),
    ("settlement_recordStatus", &[("batch", check::<u64>), ("index", check::<u64>)]),
    ("settlement_game", &[("id", check::<u64>)]),
    ("settlement_games", &[("filter", check::<Option<GamesFilter>>)]),
    ("settlement_faucet", &[("account", check::<String>), ("amount", check::<u64>)]),
];

/// Every subscription with parameters, as [`METHODS`].
pub const SUBSCRIPTIONS: &[(&str, &[(&str, Check)])] = &[("infer_subscribeStatus", &[("request_id", check::<Hash32>)])];

/// The parameter list of `method`, if it is listed in [`METHODS`].
pub fn of(method: &str) -> Option<&'static [(&'static str, Check)]> {
    METHODS.iter().find(|(m, _)| *m == method).map(|(_, p)| *p)
}

/// The parameter list of the subscription `method`, if it is listed in
/// [`SUBSCRIPTIONS`].
pub fn of_subscription(method: &str) -> Option<&'static [(&'static str, Check)]> {
    SUBSCRIPTIONS.iter().find(|(m, _)| *m == method).map(|(_, p)| *p)
}

/// serde's message without its position, which is relative to one
/// parameter and so misleading in a message about the whole request.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => msg,
    }
}

/// `NAME: reason` for the first parameter of `params` (positional array or
/// named object) that does not deserialize, or `missing NAME`; `None` when
/// every parameter checks (the error was elsewhere) or `params` is neither.
pub fn locate(names: &[(&str, Check)], params: Option<&RawValue>) -> Option<String> {
    let text = params.map_or("[]", RawValue::get);
    // Each parameter's JSON (or `None`: absent), and how many were given.
    let (given, count, positional): (Vec<Option<&RawValue>>, usize, bool) = match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            (names.iter().enumerate().map(|(i, _)| items.get(i).copied()).collect(), items.len(), true)
        }
        Some(b'{') => {
            let map: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            (names.iter().map(|(n, _)| map.get(*n).copied()).collect(), 0, false)
        }
        _ => return None,
    };
    let null = RawValue::from_string("null".into()).ok()?;
    for (i, ((name, check), v)) in names.iter().zip(given).enumerate() {
        match v {
            Some(v) => {
                if let Err(e) = check(v) {
                    return Some(format!("{name}: {}", strip_position(&e.to_string())));
                }
            }
            // Absent parameters are fine where `null` is (optional ones).
            None if check(&null).is_err() => {
                let at = if positional { format!(" (position {i})") } else { String::new() };
                return Some(format!("missing parameter {name}{at}"));
            }
            None => {}
        }
    }
    if count > names.len() {
        let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        return Some(format!("{count} parameters given, the method takes {} ({})", names.len(), list.join(", ")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(method: &str, params: &str) -> Option<String> {
        let raw = RawValue::from_string(params.into()).expect("json");
        locate(of(method).expect("listed"), Some(&raw))
    }

    #[test]
    fn names_the_failing_parameter_by_position_and_by_name() {
        assert_eq!(
            loc("explorer_batches", r#"[1, "x"]"#).as_deref(),
            Some(r#"to: invalid type: string "x", expected u64"#)
        );
        assert_eq!(
            loc("explorer_batches", r#"{"from": true, "to": 1}"#).as_deref(),
            Some("from: invalid type: boolean `true`, expected u64")
        );
        assert_eq!(loc("explorer_batches", "[1]").as_deref(), Some("missing parameter to (position 1)"));
        assert_eq!(loc("explorer_batches", r#"{"from": 1}"#).as_deref(), Some("missing parameter to"));
        assert!(loc("model_get", r#"["0x12"]"#).is_some_and(|m| m.starts_with("model_id: ")));
        assert_eq!(loc("explorer_batch", "[1, 2]").as_deref(), Some("2 parameters given, the method takes 1 (number)"));
        // Optional trailing parameters may be left out; valid params locate nothing.
        assert_eq!(loc("explorer_record", &format!("[\"{}\"]", Hash32([1; 32]))), None);
        assert_eq!(loc("explorer_batches", "[1, 2]"), None);
    }

    #[test]
    fn positions_are_stripped_only_from_the_end() {
        assert_eq!(strip_position("bad at line 1 column 3"), "bad");
        assert_eq!(strip_position("bad"), "bad");
    }
}
