//! The JSON-RPC server: the API implementation over [`Node`], the RPC
//! middleware (node-wide rate limit, metrics, field-naming of parameter
//! errors; applied to every call *and every batch entry*), CORS, and the
//! transport limits.
//!
//! HTTP and WebSocket share one port (jsonrpsee upgrades WebSocket
//! requests). Limits are explicit, never jsonrpsee's defaults: request and
//! response body size, entries per JSON-RPC batch, connections, and
//! subscriptions per connection.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, Request, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    BatchRequestConfig, MethodResponse, PendingSubscriptionSink, RpcModule, Server, ServerConfig, ServerHandle,
};
use jsonrpsee::types::ErrorObjectOwned;
use tokio::sync::broadcast::error::RecvError;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use verinfer_rpc::api::{ExplorerApiServer, InferApiServer, ModelApiServer};
use verinfer_rpc::error::{self as codes, ApiError};
use verinfer_rpc::tensor::{Encoding, WireTensor};
use verinfer_rpc::types::*;
use verinfer_state::hash::Hash32;
use verinfer_state::receipt::Receipt;

use crate::config::RpcConfig;
use crate::metrics::Metrics;
use crate::node::{Node, worst_case_tensor_bytes};

/// Most batches `explorer_batches` returns at once.
pub const MAX_BATCH_RANGE: u64 = 1000;

/// The API implementation.
#[derive(Clone, Debug)]
pub struct Api {
    node: Arc<Node>,
}

fn api<T>(r: Result<T, ApiError>) -> RpcResult<T> {
    r.map_err(ErrorObjectOwned::from)
}

fn store<T>(r: Result<T, verinfer_state::StoreError>) -> Result<T, ApiError> {
    r.map_err(|e| match e {
        // A documented state of old data, not a failure.
        verinfer_state::StoreError::TensorsPruned(_) => ApiError::not_found(e.to_string()),
        e => ApiError::internal(format!("store: {e}")),
    })
}

/// Refuses, before encoding it, an answer that could exceed the response
/// limit (jsonrpsee checks only after the whole answer is built, which for
/// a large tensor costs many times its size in memory).
fn fits(n: &Node, tensor_bytes: u64, hint: &str) -> Result<(), ApiError> {
    let limit = u64::from(n.cfg.rpc.max_response_body_bytes);
    let need = tensor_bytes.saturating_add(crate::node::RESPONSE_OVERHEAD);
    if need > limit {
        return Err(ApiError::new(
            codes::OVERSIZED_RESPONSE,
            format!(
                "the answer could take {need} bytes, above the node's rpc.max_response_body_bytes ({limit}); {hint}"
            ),
        ));
    }
    Ok(())
}

impl Api {
    /// Wraps a node.
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Every method of every namespace in one module.
    pub fn into_module(self) -> RpcModule<()> {
        let mut m = RpcModule::new(());
        m.merge(ModelApiServer::into_rpc(self.clone())).expect("distinct method names");
        m.merge(InferApiServer::into_rpc(self.clone())).expect("distinct method names");
        m.merge(ExplorerApiServer::into_rpc(self)).expect("distinct method names");
        m
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Node>) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let n = self.node.clone();
        tokio::task::spawn_blocking(move || f(n))
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("task failed: {e}"))))
    }

    fn batch_summary(node: &Node, number: u64) -> Result<verinfer_state::batch::BatchHeader, ApiError> {
        store(node.store.header(number))?.ok_or_else(|| {
            let msg = match node.store.head() {
                Some(h) => format!("number: no batch {number} (head is {})", h.number),
                None => format!("number: no batch {number} (no batch sealed yet; batches are numbered from 1)"),
            };
            ApiError::not_found(msg)
        })
    }
}

#[async_trait]
impl ModelApiServer for Api {
    async fn register_model(&self, request: RegisterModel) -> RpcResult<ModelInfo> {
        api(self.blocking(move |n| n.register_b64(&request)).await)
    }

    async fn get_model(&self, model_id: Hash32) -> RpcResult<ModelInfo> {
        api(self
            .node
            .model(&model_id)
            .map(|m| m.info(false))
            .ok_or_else(|| ApiError::new(codes::UNKNOWN_MODEL, format!("model_id: no model {model_id} is registered"))))
    }

    async fn list_models(&self) -> RpcResult<Vec<ModelInfo>> {
        Ok(self.node.models().iter().map(|m| m.info(false)).collect())
    }

    async fn model_program(&self, model_id: Hash32) -> RpcResult<ModelProgram> {
        api(self
            .blocking(move |n| {
                let entry = n.model(&model_id).map(|m| m.entry.clone()).ok_or_else(|| {
                    ApiError::new(codes::UNKNOWN_MODEL, format!("model_id: no model {model_id} is registered"))
                })?;
                let bytes = store(n.store.model_program(&model_id))?
                    .ok_or_else(|| ApiError::internal(format!("store: model {model_id} has no program")))?;
                fits(&n, crate::node::b64_len(bytes.len() as u64), "the program is too large to serve over RPC")?;
                Ok(ModelProgram {
                    model_id,
                    program_root: entry.program_root,
                    program_b64: base64::engine::general_purpose::STANDARD.encode(bytes),
                })
            })
            .await)
    }
}

#[async_trait]
impl InferApiServer for Api {
    async fn submit(&self, request: SubmitRequest) -> RpcResult<SubmitResponse> {
        api(self.node.submit(request).await)
    }

    async fn receipt(&self, request_id: Hash32) -> RpcResult<Receipt> {
        api(store(self.node.store.receipt(&request_id))
            .and_then(|r| r.ok_or_else(|| ApiError::not_found(format!("request_id: no request {request_id}")))))
    }

    async fn subscribe_status(&self, pending: PendingSubscriptionSink, request_id: Hash32) -> SubscriptionResult {
        // Watch first, then read: a change between the two is not missed.
        let mut rx = self.node.events.watch(request_id);
        let current = match self.node.store.receipt(&request_id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.node.events.prune(&request_id);
                pending.reject(ApiError::not_found(format!("request_id: no request {request_id}"))).await;
                return Ok(());
            }
            Err(e) => {
                pending.reject(ApiError::internal(format!("store: {e}"))).await;
                return Ok(());
            }
        };
        let sink = pending.accept().await?;
        sink.send(serde_json::value::to_raw_value(&current)?).await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                r = rx.recv() => match r {
                    Some(receipt) => {
                        if sink.send(serde_json::value::to_raw_value(&receipt)?).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        drop(rx);
        self.node.events.prune(&request_id);
        Ok(())
    }
}

#[async_trait]
impl ExplorerApiServer for Api {
    async fn head(&self) -> RpcResult<HeadInfo> {
        let s = &self.node.store;
        Ok(HeadInfo { head: s.head(), pending: s.pending_count(), next_sequence: s.next_sequence() })
    }

    async fn batch(&self, number: u64) -> RpcResult<BatchInfo> {
        api(self
            .blocking(move |n| {
                let header = Self::batch_summary(&n, number)?;
                let records = store(n.store.records_in_batch(number, 0))?
                    .map(|r| r.map(|(_, rec)| rec))
                    .collect::<Result<Vec<_>, _>>();
                Ok(BatchInfo { hash: header.hash(), header, records: store(records)? })
            })
            .await)
    }

    async fn batches(&self, from: u64, to: u64) -> RpcResult<Vec<BatchSummary>> {
        if to < from {
            return Err(ApiError::invalid(format!("to: {to} is before from ({from})")).into());
        }
        if to - from >= MAX_BATCH_RANGE {
            return Err(ApiError::invalid(format!(
                "to: at most {MAX_BATCH_RANGE} batches per call (from {from} to {to} is {})",
                // 2^64 batches for [0, u64::MAX]: print it, do not overflow.
                u128::from(to - from) + 1
            ))
            .into());
        }
        api(self
            .blocking(move |n| {
                let it = store(n.store.headers(from..=to, false))?;
                let v: Result<Vec<_>, _> = it.map(|h| h.map(|h| BatchSummary { hash: h.hash(), header: h })).collect();
                store(v)
            })
            .await)
    }

    async fn batch_body(&self, number: u64) -> RpcResult<BatchBodyInfo> {
        api(self
            .blocking(move |n| {
                let header = Self::batch_summary(&n, number)?;
                let body = store(n.store.body(number))?
                    .ok_or_else(|| ApiError::internal(format!("batch {number} has a header but no body")))?;
                let need = body.entries.iter().flat_map(|e| &e.inputs).fold(0u64, |a, t| {
                    a.saturating_add(worst_case_tensor_bytes(t.dtype(), &t.shape_u64(), Encoding::B64))
                });
                fits(&n, need, "fetch its records one by one with explorer_record")?;
                let entries = body
                    .entries
                    .iter()
                    .map(|e| BodyEntryInfo { record: e.record, inputs: e.inputs.iter().map(WireTensor::b64).collect() })
                    .collect();
                Ok(BatchBodyInfo { hash: header.hash(), header, entries })
            })
            .await)
    }

    async fn record(&self, request_id: Hash32, options: Option<RecordOptions>) -> RpcResult<RecordInfo> {
        let enc = options.unwrap_or_default().encoding;
        api(self
            .blocking(move |n| {
                let nf = || ApiError::not_found(format!("request_id: no request {request_id}"));
                let record = store(n.store.record(&request_id))?.ok_or_else(nf)?;
                let receipt = store(n.store.receipt(&request_id))?.ok_or_else(nf)?;
                let t = store(n.store.record_tensors(&request_id))?.ok_or_else(nf)?;
                let need = t
                    .inputs
                    .iter()
                    .chain(&t.outputs)
                    .fold(0u64, |a, t| a.saturating_add(worst_case_tensor_bytes(t.dtype(), &t.shape_u64(), enc)));
                fits(&n, need, "ask for {\"encoding\": \"b64\"}, or the record is too large to serve")?;
                let enc_all = |v: &[verinfer_state::tensor::Tensor]| -> Vec<WireTensor> {
                    v.iter().map(|t| WireTensor::encode(t, enc)).collect()
                };
                Ok(RecordInfo { record, receipt, inputs: enc_all(&t.inputs), outputs: enc_all(&t.outputs) })
            })
            .await)
    }

    async fn stats(&self) -> RpcResult<Stats> {
        Ok(self.node.stats())
    }

    async fn subscribe_batches(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut rx = self.node.events.batches.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                r = rx.recv() => match r {
                    Ok(b) => {
                        if sink.send(serde_json::value::to_raw_value(&b)?).await.is_err() {
                            break;
                        }
                    }
                    // A subscriber that fell 1024 batches behind is closed;
                    // it catches up with explorer_batches and resubscribes.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }
}

// ----- middleware --------------------------------------------------------

/// A token bucket shared by every connection (state outside the
/// per-connection middleware: jsonrpsee builds one middleware per HTTP
/// request).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, tokio::time::Instant)>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` stored (0 = `rate`).
    pub fn new(rate: u32, burst: u32) -> Option<Arc<Self>> {
        if rate == 0 {
            return None;
        }
        let burst = if burst == 0 { rate } else { burst } as f64;
        Some(Arc::new(Self { rate: rate as f64, burst, state: Mutex::new((burst, tokio::time::Instant::now())) }))
    }

    /// Takes a token, or says after how many ms one will be available.
    pub fn try_take(&self) -> Result<(), u64> {
        let now = tokio::time::Instant::now();
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst);
        s.1 = now;
        // Tolerances absorb float error in the refill arithmetic.
        if s.0 >= 1.0 - 1e-9 {
            s.0 = (s.0 - 1.0).max(0.0);
            Ok(())
        } else {
            Err(((1.0 - s.0) / self.rate * 1000.0 - 1e-6).ceil().max(1.0) as u64)
        }
    }
}

/// State shared by every connection's middleware.
#[derive(Debug)]
pub struct Shared {
    limiter: Option<Arc<RateLimiter>>,
    metrics: Arc<Metrics>,
    methods: HashSet<String>,
    /// Subscribe and unsubscribe methods: they need a WebSocket.
    streaming: HashSet<String>,
    max_response: usize,
}

/// Marks a call that arrived as a plain HTTP request (not a WebSocket
/// upgrade). jsonrpsee copies the HTTP request's extensions into every call
/// it carries, which is how [`Guard`] learns the transport.
#[derive(Clone, Copy, Debug)]
struct PlainHttp;

/// The HTTP layer that inserts [`PlainHttp`].
#[derive(Clone, Copy, Debug)]
struct MarkTransport;

impl<S> tower::Layer<S> for MarkTransport {
    type Service = MarkTransportService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MarkTransportService(inner)
    }
}

#[derive(Clone, Debug)]
struct MarkTransportService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for MarkTransportService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if !jsonrpsee::server::ws::is_upgrade_request(&req) {
            req.extensions_mut().insert(PlainHttp);
        }
        self.0.call(req)
    }
}

/// The HTTP layer that gives every request body a deadline
/// (`rpc.request_body_timeout_ms` after its headers) and a size limit
/// (`rpc.max_request_body_bytes`), and answers either failure itself with
/// a message that names the setting: jsonrpsee would answer a body cut off
/// by the deadline with a bare `Parse error` (400) or `Internal error`
/// (500), depending on its size, and an oversized one with `Request is too
/// big` (413), or `Internal error` when it came without a Content-Length.
#[derive(Clone, Copy, Debug)]
struct BodyLimits {
    deadline: Duration,
    max_bytes: u32,
}

impl<S> tower::Layer<S> for BodyLimits {
    type Service = BodyLimitsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyLimitsService(inner, *self)
    }
}

#[derive(Clone, Debug)]
struct BodyLimitsService<S>(S, BodyLimits);

/// How a [`LimitedBody`] ended, shared with its request's answer.
const BODY_OK: u8 = 0;
const BODY_LATE: u8 = 1;
const BODY_TOO_BIG: u8 = 2;

/// A JSON-RPC error answer (id `null`) with HTTP `status`.
fn transport_error(status: http::StatusCode, code: i32, message: String) -> jsonrpsee::server::HttpResponse {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    let mut r = jsonrpsee::server::HttpResponse::new(jsonrpsee::server::HttpBody::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn too_big(limits: BodyLimits, size: Option<u64>) -> jsonrpsee::server::HttpResponse {
    let size = size.map_or_else(|| "more than that".to_string(), |n| format!("{n} bytes"));
    transport_error(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        codes::OVERSIZED_REQUEST,
        format!("request body: {size}, above the node's rpc.max_request_body_bytes ({} bytes)", limits.max_bytes),
    )
}

impl<S, B> tower::Service<http::Request<B>> for BodyLimitsService<S>
where
    S: tower::Service<http::Request<LimitedBody<B>>, Response = jsonrpsee::server::HttpResponse>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = jsonrpsee::server::HttpResponse;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let limits = self.1;
        let declared =
            req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if req.method() == http::Method::POST
            && let Some(n) = declared.filter(|&n| n > u64::from(limits.max_bytes))
        {
            return Box::pin(std::future::ready(Ok(too_big(limits, Some(n)))));
        }
        let ended = Arc::new(std::sync::atomic::AtomicU8::new(BODY_OK));
        let fut = self.0.call(req.map(|inner| LimitedBody {
            inner: Box::pin(inner),
            deadline: Box::pin(tokio::time::sleep(limits.deadline)),
            limits,
            received: 0,
            ended: ended.clone(),
        }));
        Box::pin(async move {
            let rp = fut.await?;
            // The body failed, so whatever the server answered was about a
            // body it never had whole.
            Ok(match ended.load(std::sync::atomic::Ordering::Acquire) {
                BODY_LATE => transport_error(
                    http::StatusCode::REQUEST_TIMEOUT,
                    codes::PARSE_ERROR,
                    format!(
                        "request body not received whole within {} ms of its headers (rpc.request_body_timeout_ms)",
                        limits.deadline.as_millis()
                    ),
                ),
                BODY_TOO_BIG => too_big(limits, None),
                _ => rp,
            })
        })
    }
}

/// A body that fails once its deadline passes or once it grows past the
/// size limit. A slow sender (one byte now and then) holds its connection
/// for at most the deadline, where a per-frame idle timeout would let it
/// stay forever.
struct LimitedBody<B> {
    inner: std::pin::Pin<Box<B>>,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    limits: BodyLimits,
    received: u64,
    ended: Arc<std::sync::atomic::AtomicU8>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use bytes::Buf as _;
        use std::task::Poll;
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.ended.store(BODY_LATE, std::sync::atomic::Ordering::Release);
            let ms = self.limits.deadline.as_millis();
            return Poll::Ready(Some(Err(format!("request body not received within {ms} ms").into())));
        }
        let frame = std::task::ready!(self.inner.as_mut().poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            let n = f.data_ref().map_or(0, |d| d.remaining() as u64);
            self.received = self.received.saturating_add(n);
            if self.received > u64::from(self.limits.max_bytes) {
                self.ended.store(BODY_TOO_BIG, std::sync::atomic::Ordering::Release);
                return Poll::Ready(Some(Err("request body above rpc.max_request_body_bytes".into())));
            }
        }
        Poll::Ready(frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The RPC middleware.
#[derive(Clone, Debug)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Guard<S> {
    fn label<'m>(&self, method: &'m str) -> &'m str {
        if self.shared.methods.contains(method) { method } else { "unknown" }
    }
}

/// Prefixes an INVALID_PARAMS message with the method, and names the
/// parameter at fault where jsonrpsee did not ([`crate::params`]).
fn rewrite_invalid_params(
    method: &str,
    id: jsonrpsee::types::Id<'static>,
    params: Option<&serde_json::value::RawValue>,
    rp: MethodResponse,
) -> MethodResponse {
    if rp.as_error_code() != Some(codes::INVALID_PARAMS) || rp.is_subscription() {
        return rp;
    }
    let data = serde_json::from_str::<serde_json::Value>(rp.as_json().get())
        .ok()
        .and_then(|v| v.pointer("/error/data").and_then(|d| d.as_str().map(str::to_string)));
    let located = crate::params::of(method).and_then(|names| crate::params::locate(names, params));
    match located.or(data) {
        Some(d) => MethodResponse::error(id, invalid_params(method, d)),
        None => rp,
    }
}

/// INVALID_PARAMS as `METHOD params: PATH: reason`, with the reason alone
/// as its data.
fn invalid_params(method: &str, reason: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(codes::INVALID_PARAMS, format!("{method} params: {reason}"), Some(reason))
}

impl<S> RpcServiceT for Guard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let method = self.label(req.method_name()).to_string();
        let id = req.id.clone().into_owned();
        let shared = self.shared.clone();
        let inner = self.inner.clone();
        // jsonrpsee answers a subscription over HTTP with a bare internal
        // error; say what is wrong and what to do instead (geth answers the
        // same mistake with -32601 too).
        let needs_ws = req.extensions().get::<PlainHttp>().is_some() && shared.streaming.contains(&method);
        // Kept to name a failing parameter; borrowed from the request body
        // (a copy only for the few, small, listed methods).
        let params = crate::params::of(&method).and(req.params.clone());
        // A subscription's own rejection goes straight to the socket, where
        // it cannot be rewritten: check its parameters here instead.
        let bad_sub_params = crate::params::of_subscription(&method)
            .and_then(|names| crate::params::locate(names, req.params.as_deref()));
        async move {
            if needs_ws {
                shared.metrics.rpc_requests.with_label_values(&[&method, "error"]).inc();
                shared.metrics.rpc_errors.with_label_values(&[&codes::METHOD_NOT_FOUND.to_string()]).inc();
                return MethodResponse::error(
                    id,
                    ErrorObjectOwned::owned(
                        codes::METHOD_NOT_FOUND,
                        format!(
                            "{method} works only over a WebSocket (ws:// on this same port): \
                             HTTP cannot carry subscription notifications"
                        ),
                        None::<()>,
                    ),
                );
            }
            if let Some(l) = &shared.limiter
                && let Err(ms) = l.try_take()
            {
                shared.metrics.rejected.with_label_values(&["rate_limited"]).inc();
                shared.metrics.rpc_errors.with_label_values(&[&codes::RATE_LIMITED.to_string()]).inc();
                return MethodResponse::error(
                    id,
                    ApiError::retry(codes::RATE_LIMITED, "node-wide rate limit exceeded; retry later", ms),
                );
            }
            let t0 = std::time::Instant::now();
            let rp = match bad_sub_params {
                Some(d) => MethodResponse::error(id, invalid_params(&method, d)),
                None => rewrite_invalid_params(&method, id, params.as_deref(), inner.call(req).await),
            };
            shared.metrics.rpc_latency.with_label_values(&[&method]).observe(t0.elapsed().as_secs_f64());
            let outcome = if rp.is_error() { "error" } else { "ok" };
            shared.metrics.rpc_requests.with_label_values(&[&method, outcome]).inc();
            if let Some(code) = rp.as_error_code() {
                shared.metrics.rpc_errors.with_label_values(&[&code.to_string()]).inc();
            }
            rp
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        // Each entry goes through `call`, so the rate limit, metrics and
        // error rewriting apply to batch entries exactly as to single calls.
        let this = self.clone();
        async move {
            let mut out = BatchResponseBuilder::new_with_limit(this.shared.max_response);
            let mut got_notification = false;
            for entry in batch {
                match entry {
                    Ok(BatchEntry::Call(req)) => {
                        let rp = this.call(req).await;
                        if let Err(e) = out.append(rp) {
                            return e;
                        }
                    }
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.inner.notification(n).await;
                    }
                    Err(err) => {
                        let (err, id) = err.into_parts();
                        if let Err(e) = out.append(MethodResponse::error(id, err)) {
                            return e;
                        }
                    }
                }
            }
            if out.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(out.finish())
            }
        }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([http::Method::POST, http::Method::GET, http::Method::OPTIONS])
        .allow_headers([http::header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<http::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    })
}

/// Starts the RPC server for `node` with the node's own methods plus
/// `extra` (e.g. the embedded settlement layer's `settlement_*` methods);
/// returns its handle and bound address.
pub async fn start(
    node: Arc<Node>,
    cfg: &RpcConfig,
    extra: Option<RpcModule<()>>,
) -> anyhow::Result<(ServerHandle, SocketAddr)> {
    let mut module = Api::new(node.clone()).into_module();
    if let Some(extra) = extra {
        module.merge(extra).map_err(|e| anyhow::anyhow!("extra RPC methods: {e}"))?;
    }
    let methods: HashSet<String> = module.method_names().map(str::to_string).collect();
    let streaming = methods
        .iter()
        .filter(|m| {
            matches!(
                module.method(m),
                Some(
                    jsonrpsee::server::MethodCallback::Subscription(_)
                        | jsonrpsee::server::MethodCallback::Unsubscription(_)
                )
            )
        })
        .cloned()
        .collect();
    let shared = Arc::new(Shared {
        limiter: RateLimiter::new(cfg.rate_limit_per_s, cfg.rate_limit_burst),
        metrics: node.metrics.clone(),
        methods,
        streaming,
        max_response: cfg.max_response_body_bytes as usize,
    });
    let server_cfg = ServerConfig::builder()
        .max_request_body_size(cfg.max_request_body_bytes)
        .max_response_body_size(cfg.max_response_body_bytes)
        .max_connections(cfg.max_connections)
        .max_subscriptions_per_connection(cfg.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(cfg.max_batch_len))
        .build();
    let rpc_mw = RpcServiceBuilder::new().layer_fn(move |inner| Guard { inner, shared: shared.clone() });
    let http_mw = tower::ServiceBuilder::new()
        .option_layer(cors(&cfg.cors_origins))
        .layer(MarkTransport)
        .layer(BodyLimits {
            deadline: Duration::from_millis(cfg.request_body_timeout_ms),
            max_bytes: cfg.max_request_body_bytes,
        })
        .layer(crate::ids::FixIds);
    let server = Server::builder()
        .set_config(server_cfg)
        .set_http_middleware(http_mw)
        .set_rpc_middleware(rpc_mw)
        .build(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding RPC on {}: {e}", cfg.listen))?;
    let addr = server.local_addr()?;
    let handle = server.start(module);
    Ok((handle, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_refills_with_time() {
        let l = RateLimiter::new(10, 2).expect("limited");
        assert_eq!(l.try_take(), Ok(()));
        assert_eq!(l.try_take(), Ok(()));
        assert_eq!(l.try_take(), Err(100));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(l.try_take(), Err(50));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(l.try_take(), Ok(()));
        // The bucket never holds more than the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(l.try_take(), Ok(()));
        assert_eq!(l.try_take(), Ok(()));
        assert!(l.try_take().is_err());
        assert!(RateLimiter::new(0, 5).is_none());
    }

    #[test]
    fn cors_layers() {
        assert!(cors(&[]).is_none());
        assert!(cors(&["*".into()]).is_some());
        assert!(cors(&["https://a.example".into()]).is_some());
    }
}
