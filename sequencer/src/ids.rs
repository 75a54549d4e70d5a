//! JSON-RPC ids jsonrpsee does not take, made to work over HTTP.
//!
//! JSON-RPC 2.0 allows any string, number or null as a request id; jsonrpsee
//! 0.26 takes only strings, null and integers in `u64`. A request with the
//! id `-1`, `1.5` or `1e3` fails its parse as a call, parses as a
//! notification instead, is not run, and gets the body `null`: the caller
//! waits for an answer that never comes. An id that is a boolean, an object
//! or an array is no valid id at all, and gets the same `null` where the
//! specification asks for an Invalid Request error.
//!
//! This HTTP layer looks at small bodies (up to [`MAX_INSPECTED`] bytes with a
//! `Content-Length`; a large body is an inference and keeps the fast path)
//! for such ids with a byte scan, and only then parses them:
//! * a number id that is not a `u64` is swapped for a private string id on
//!   the way in and put back on the way out, so the call runs and answers
//!   with the id the caller sent;
//! * a boolean, object or array id is answered with INVALID_REQUEST (-32600)
//!   and id `null`, and not run; in a batch, the rest of the batch runs.
//!
//! WebSocket frames do not pass through here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use serde_json::{Value, json};
use verinfer_rpc::error as codes;

/// Largest body this layer buffers and inspects.
pub const MAX_INSPECTED: u64 = 64 << 10;

/// Prefix of the private ids; a control character keeps them apart from
/// any id a client would choose.
const TOKEN: &str = "\u{1}verinfer-id-";

/// Does `body` hold an `"id"` member whose value jsonrpsee would not take?
/// A cheap over-approximation (an `"id"` key inside params also counts);
/// [`plan`] decides exactly.
fn suspicious(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some(i) = memchr::memmem::find(rest, b"\"id\"") {
        rest = &rest[i + 4..];
        let mut j = 0;
        while j < rest.len() && rest[j].is_ascii_whitespace() {
            j += 1;
        }
        if rest.get(j) != Some(&b':') {
            continue;
        }
        j += 1;
        while j < rest.len() && rest[j].is_ascii_whitespace() {
            j += 1;
        }
        match rest.get(j) {
            Some(b'-' | b't' | b'f' | b'{' | b'[') => return true,
            Some(b'0'..=b'9') => {
                let end = rest[j..].iter().position(|c| !c.is_ascii_digit()).map_or(rest.len(), |k| j + k);
                let digits = std::str::from_utf8(&rest[j..end]).unwrap_or("");
                if digits.parse::<u64>().is_err() || matches!(rest.get(end), Some(b'.' | b'e' | b'E')) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// What to do with an inspected body.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Send on `body`; in the answer, put back the original ids of the
    /// private ones and add `errors` (answers to entries taken out).
    Forward { body: Vec<u8>, ids: HashMap<String, Value>, errors: Vec<Value> },
    /// Answer this without running anything.
    Answer(Value),
}

fn invalid_id(id: &Value) -> Value {
    let kind = match id {
        Value::Bool(_) => "a boolean",
        Value::Object(_) => "an object",
        _ => "an array",
    };
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": codes::INVALID_REQUEST, "message": format!("id: must be a string, a number or null, not {kind}")},
    })
}

/// Rewrites one entry: `Some(error)` if its id is invalid.
fn fix_entry(entry: &mut Value, ids: &mut HashMap<String, Value>) -> Option<Value> {
    let id = entry.as_object_mut()?.get_mut("id")?;
    match id {
        Value::Number(n) if n.as_u64().is_none() => {
            let token = format!("{TOKEN}{}", ids.len());
            ids.insert(token.clone(), std::mem::replace(id, Value::String(token)));
            None
        }
        Value::Bool(_) | Value::Object(_) | Value::Array(_) => Some(invalid_id(id)),
        _ => None,
    }
}

/// `None`: forward the body unchanged.
fn plan(body: &[u8]) -> Option<Plan> {
    if !suspicious(body) {
        return None;
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut ids = HashMap::new();
    let mut errors = Vec::new();
    match &mut v {
        Value::Array(entries) => {
            let mut kept = Vec::with_capacity(entries.len());
            for mut e in std::mem::take(entries) {
                match fix_entry(&mut e, &mut ids) {
                    Some(err) => errors.push(err),
                    None => kept.push(e),
                }
            }
            if kept.is_empty() && !errors.is_empty() {
                return Some(Plan::Answer(Value::Array(errors)));
            }
            *entries = kept;
        }
        obj => {
            if let Some(err) = fix_entry(obj, &mut ids) {
                return Some(Plan::Answer(err));
            }
        }
    }
    if ids.is_empty() && errors.is_empty() {
        return None;
    }
    Some(Plan::Forward { body: serde_json::to_vec(&v).ok()?, ids, errors })
}

/// The answer to a forwarded body with the caller's ids back and the
/// taken-out entries' errors added. `None` if `answer` is not JSON.
fn restore(answer: &[u8], ids: &HashMap<String, Value>, errors: Vec<Value>) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(answer).ok()?;
    let put_back = |r: &mut Value| {
        if let Some(id) = r.get_mut("id")
            && let Some(orig) = id.as_str().and_then(|s| ids.get(s))
        {
            *id = orig.clone();
        }
    };
    match &mut v {
        Value::Array(rs) => {
            rs.iter_mut().for_each(put_back);
            rs.extend(errors);
        }
        // A batch whose every remaining entry was a notification answers
        // nothing; the errors are then the whole answer.
        Value::Null if !errors.is_empty() => v = Value::Array(errors),
        r => put_back(r),
    }
    serde_json::to_vec(&v).ok()
}

fn json_response(body: Vec<u8>, mut template: http::response::Parts) -> HttpResponse {
    template.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
    HttpResponse::from_parts(template, HttpBody::from(body))
}

/// The layer; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct FixIds;

impl<S> tower::Layer<S> for FixIds {
    type Service = FixIdsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FixIdsService(inner)
    }
}

/// The service of [`FixIds`].
#[derive(Clone, Debug)]
pub struct FixIdsService<S>(S);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<HttpRequest<B>> for FixIdsService<S>
where
    S: tower::Service<HttpRequest<HttpBody>, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        // The clone is unpolled; keep the ready one for this call.
        let clone = self.0.clone();
        let mut inner = std::mem::replace(&mut self.0, clone);
        let small = req.method() == http::Method::POST
            && req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n <= MAX_INSPECTED);
        if !small {
            return Box::pin(inner.call(req.map(HttpBody::new)));
        }
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(c) => c.to_bytes(),
                // The connection failed mid-body: let jsonrpsee see (and
                // answer) an empty body.
                Err(_) => bytes::Bytes::new(),
            };
            match plan(&bytes) {
                None => {
                    inner.call(HttpRequest::from_parts(parts, HttpBody::new(http_body_util::Full::new(bytes)))).await
                }
                Some(Plan::Answer(v)) => {
                    let (template, _) = HttpResponse::new(()).into_parts();
                    let mut r = json_response(serde_json::to_vec(&v).unwrap_or_default(), template);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json; charset=utf-8"),
                    );
                    Ok(r)
                }
                Some(Plan::Forward { body, ids, errors }) => {
                    let mut parts = parts;
                    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
                    let resp = inner.call(HttpRequest::from_parts(parts, HttpBody::from(body))).await?;
                    let (rparts, rbody) = resp.into_parts();
                    let answer = match rbody.collect().await {
                        Ok(c) => c.to_bytes(),
                        Err(_) => bytes::Bytes::new(),
                    };
                    Ok(match restore(&answer, &ids, errors) {
                        Some(b) => json_response(b, rparts),
                        None => HttpResponse::from_parts(rparts, HttpBody::new(http_body_util::Full::new(answer))),
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_take_the_fast_path() {
        for b in [
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[]}"#,
            r#"{"jsonrpc":"2.0","id":"-1","method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id" : 18446744073709551615,"method":"m"}"#,
            r#"[{"id":0},{"id":7}]"#,
        ] {
            assert!(!suspicious(b.as_bytes()), "{b}");
        }
        for b in [
            r#"{"id":-1}"#,
            r#"{"id": 1.5}"#,
            r#"{"id":1e3}"#,
            r#"{"id":true}"#,
            r#"{"id":{}}"#,
            r#"{"id":[1]}"#,
            r#"{"id":18446744073709551616000}"#,
        ] {
            assert!(suspicious(b.as_bytes()), "{b}");
        }
        // A suspicious-looking key inside params is parsed and left alone.
        assert_eq!(plan(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"id":-1}}"#), None);
    }

    #[test]
    fn number_ids_are_swapped_and_restored() {
        let Some(Plan::Forward { body, ids, errors }) = plan(br#"{"jsonrpc":"2.0","id":-1,"method":"m"}"#) else {
            panic!("forward")
        };
        assert!(errors.is_empty());
        let sent: Value = serde_json::from_slice(&body).unwrap();
        let token = sent["id"].as_str().unwrap().to_string();
        assert!(token.starts_with(TOKEN));
        let answer = json!({"jsonrpc":"2.0","id": token,"result":5});
        let back: Value =
            serde_json::from_slice(&restore(&serde_json::to_vec(&answer).unwrap(), &ids, errors).unwrap()).unwrap();
        assert_eq!(back, json!({"jsonrpc":"2.0","id":-1,"result":5}));
    }

    #[test]
    fn invalid_ids_are_answered_and_the_rest_of_a_batch_runs() {
        let Some(Plan::Answer(a)) = plan(br#"{"jsonrpc":"2.0","id":true,"method":"m"}"#) else { panic!("answer") };
        assert_eq!(a["error"]["code"], codes::INVALID_REQUEST);
        assert_eq!(a["id"], Value::Null);
        assert_eq!(a["error"]["message"], "id: must be a string, a number or null, not a boolean");

        let batch = br#"[{"jsonrpc":"2.0","id":[],"method":"m"},{"jsonrpc":"2.0","id":2.5,"method":"m"}]"#;
        let Some(Plan::Forward { body, ids, errors }) = plan(batch) else { panic!("forward") };
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent.as_array().unwrap().len(), 1, "the invalid entry is taken out");
        let answer = json!([{"jsonrpc":"2.0","id": sent[0]["id"],"result":1}]);
        let back: Value =
            serde_json::from_slice(&restore(&serde_json::to_vec(&answer).unwrap(), &ids, errors).unwrap()).unwrap();
        assert_eq!(back[0], json!({"jsonrpc":"2.0","id":2.5,"result":1}));
        assert_eq!(back[1]["error"]["message"], "id: must be a string, a number or null, not an array");

        let Some(Plan::Answer(a)) = plan(br#"[{"id":{},"method":"m"}]"#) else { panic!("answer") };
        assert_eq!(a.as_array().unwrap().len(), 1);
    }
}
