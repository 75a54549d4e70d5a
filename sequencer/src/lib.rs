//! # verinfer-sequencer
//!
//! The Verinfer node: JSON-RPC server (HTTP and WebSocket on one port),
//! bounded mempool, execution workers, committer, batcher, metrics.
//!
//! * [`node`]: the core (models, mempool, workers, committer, batcher,
//!   events); usable without the network.
//! * [`server`]: the API implementation, middleware and limits.
//! * [`exec`]: execution behind a trait: the planned fast executor (what
//!   the node runs) and the reference executor (tests, comparisons).
//! * [`config`]: TOML configuration.
//! * [`metrics`]: Prometheus metrics on their own port.
//! * [`settlement`]: the embedded referee (persistence, batch poster,
//!   defender); [`settlement_rpc`]: its `settlement_*` methods.
//! * [`fault`]: dev-only fault injection.
//!
//! [`RunningNode::start`] wires them together; [`RunningNode::shutdown`]
//! stops the server, lets admitted requests finish and seals what is
//! pending.

pub mod config;
pub mod exec;
pub mod fault;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod params;
pub mod server;
pub mod settlement;
pub mod settlement_rpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::NodeConfig;
pub use exec::{Executor, FastExecutor, Limits, Prepared, ReferenceExecutor};
pub use node::{BatchPoster, Node, StubPoster};

/// A node with its RPC server and metrics endpoint running.
#[derive(Debug)]
pub struct RunningNode {
    /// The core.
    pub node: Arc<Node>,
    /// Where the RPC server listens (HTTP and WebSocket).
    pub rpc_addr: SocketAddr,
    /// Where `/metrics` is served, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The embedded settlement layer, if the node hosts it.
    pub settlement: Option<Arc<settlement::SettlementHost>>,
    server: jsonrpsee::server::ServerHandle,
    tasks: node::NodeTasks,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    settlement_tasks: Option<settlement::SettlementTasks>,
}

impl RunningNode {
    /// Opens the store, starts the core, the RPC server and the metrics
    /// endpoint on the current tokio runtime.
    pub async fn start(
        cfg: NodeConfig,
        executor: Arc<dyn Executor>,
        poster: Arc<dyn BatchPoster>,
    ) -> anyhow::Result<Self> {
        Self::start_with(cfg, executor, poster, |_| Ok(None)).await
    }

    /// Like [`RunningNode::start`], serving extra methods on the same port:
    /// `extra` gets the started core and returns an `RpcModule` to merge
    /// (the embedded settlement layer's `settlement_*` namespace). Method
    /// names must not collide with the node's own.
    pub async fn start_with(
        cfg: NodeConfig,
        executor: Arc<dyn Executor>,
        poster: Arc<dyn BatchPoster>,
        extra: impl FnOnce(&Arc<Node>) -> anyhow::Result<Option<jsonrpsee::RpcModule<()>>>,
    ) -> anyhow::Result<Self> {
        let (node, tasks) = Node::start(cfg, executor, poster)?;
        let module = extra(&node)?;
        Self::serve(node, tasks, module).await
    }

    /// Starts a node that hosts the settlement layer (when
    /// `cfg.settlement.enabled`, else like [`RunningNode::start`] with a
    /// [`StubPoster`]): opens the store, loads or creates the sequencer key
    /// and the settlement state, bonds the sequencer if configured (always
    /// with `--dev`), posts every sealed batch to the referee, defends the
    /// sequencer's records in dispute games, and serves `settlement_*` on
    /// the RPC port.
    pub async fn start_embedded(mut cfg: NodeConfig, executor: Arc<dyn Executor>) -> anyhow::Result<Self> {
        cfg.validate()?;
        if !cfg.settlement.enabled {
            return Self::start(cfg, executor, Arc::new(StubPoster::new())).await;
        }
        let store = Node::open_store(&cfg)?;
        let key = settlement::load_or_create_key_for(&store, &settlement::key_path(&cfg))?;
        let host = settlement::SettlementHost::open(store.clone(), &cfg, key)?;
        let account = host.account();
        if cfg.sequencer_id != account.as_hash() {
            // Headers must name the account that posts them (the referee
            // checks `header.sequencer == sender`).
            if cfg.sequencer_id != config::dev_sequencer_id() {
                tracing::warn!(configured = %cfg.sequencer_id, key = %account, "sequencer_id replaced by the sequencer key's account");
            }
            cfg.sequencer_id = account.as_hash();
        }
        if cfg.settlement.auto_bond.unwrap_or(cfg.dev) {
            host.ensure_bonded()?;
        } else if host.read(|s, _| s.sequencer(&account).is_none_or(|q| q.bond < s.params().min_sequencer_bond)) {
            tracing::warn!(account = %account, "the sequencer is not bonded: batches will not be posted until it is");
        }
        let (tick_ms, defender, prune_after_ms) =
            (cfg.settlement.tick_ms, cfg.settlement.defender, cfg.settlement.prune_after_ms);
        let poster = Arc::new(settlement::SettlementPoster(host.clone()));
        let (node, tasks) = Node::start_on(cfg, store, executor, poster)?;
        host.attach(&node);
        // A weak reference: the metrics endpoint must not keep the referee
        // (and its store) alive past shutdown.
        let weak = Arc::downgrade(&host);
        node.metrics
            .register_settlement(move || weak.upgrade().map(|h| h.figures()))
            .map_err(|e| anyhow::anyhow!("settlement metrics: {e}"))?;
        let stasks = settlement::spawn_tasks(host.clone(), tick_ms, defender, prune_after_ms);
        let module = settlement_rpc::SettlementRpc::new(host.clone()).into_module();
        let mut me = Self::serve(node, tasks, Some(module)).await?;
        me.settlement = Some(host);
        me.settlement_tasks = Some(stasks);
        Ok(me)
    }

    /// Starts the RPC server (with `extra` methods) and the metrics
    /// endpoint for a started core.
    pub async fn serve(
        node: Arc<Node>,
        tasks: node::NodeTasks,
        extra: Option<jsonrpsee::RpcModule<()>>,
    ) -> anyhow::Result<Self> {
        let (metrics_addr, metrics_task) = match node.cfg.metrics.listen {
            Some(addr) => {
                let l = metrics::bind(addr).await.map_err(|e| anyhow::anyhow!("binding metrics on {addr}: {e}"))?;
                let a = l.local_addr()?;
                (Some(a), Some(tokio::spawn(metrics::serve(l, node.metrics.clone()))))
            }
            None => (None, None),
        };
        let rpc_cfg = node.cfg.rpc.clone();
        let (server, rpc_addr) = server::start(node.clone(), &rpc_cfg, extra).await?;
        tracing::info!(rpc = %rpc_addr, metrics = ?metrics_addr, "node listening (HTTP and WebSocket)");
        Ok(Self { node, rpc_addr, metrics_addr, settlement: None, server, tasks, metrics_task, settlement_tasks: None })
    }

    /// Graceful shutdown: refuse new submissions, stop the server, let
    /// admitted submissions finish (at most `grace`), seal everything
    /// pending, close the store.
    pub async fn shutdown(self, grace: Duration) {
        tracing::info!("shutting down");
        let Self { node, server, tasks, metrics_task, settlement_tasks, settlement, .. } = self;
        node.begin_shutdown();
        let _ = server.stop();
        let _ = tokio::time::timeout(grace, server.stopped()).await;
        // The core's final seal still posts to the referee, so the
        // settlement task stops after it.
        node.shutdown(tasks, grace).await;
        if let Some(t) = settlement_tasks {
            t.stop().await;
        }
        // The referee shares the store; it closes only when the RPC module's
        // last reference to the host is gone.
        if let Some(h) = settlement {
            let deadline = tokio::time::Instant::now() + grace;
            while Arc::strong_count(&h) > 1 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if let Some(t) = metrics_task {
            t.abort();
            let _ = t.await;
        }
        // The store closes when the last reference to the node goes away;
        // connection tasks of the stopped server may hold one briefly.
        let deadline = tokio::time::Instant::now() + grace;
        while Arc::strong_count(&node) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if Arc::strong_count(&node) > 1 {
            tracing::warn!("node still referenced after shutdown; the store closes when they finish");
        }
    }
}
