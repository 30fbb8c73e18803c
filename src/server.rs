//! Broker start-up and the accept loop: builds the stores, registers the broker, loads the
//! partitions it leads, serves connections under a connection limit, and drains on
//! shutdown (stop accepting, flush what producers sent, then exit).
//!
//! A broker without `--broker-id` takes a new id from `cluster/next_broker_id`: ids are
//! never reused. A lease not renewed for a whole TTL fences every partition (`fence_all`); a
//! lost lease does too, then a new lease is granted, the broker registered again and its
//! partitions re-acquired (`reacquire_all`). The drain ends by revoking the lease, after the
//! final flush, so other brokers take over without waiting for its TTL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use strato_metadata::embedded::EmbeddedStore;
use strato_metadata::etcd::EtcdStore;
use strato_metadata::model::{
    BrokerEndpoint, BrokerRecord, BrokerState, ClusterRecord, RECORD_FORMAT_V1,
};
use strato_metadata::{LeaseId, MetadataError, MetadataStore, Txn, keys};
use strato_tiering::cache::{ChunkCache, ChunkCacheConfig, DiskCacheConfig};
use strato_tiering::{Tier, TierConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::limits::Limit;
use tokio_util::sync::CancellationToken;

use crate::broker::BrokerCtx;
use crate::cluster::ClusterView;
use crate::config::{Config, MetadataUrl};
use crate::log::flush::{LogWriter, LogWriterConfig};
use crate::log::topics::TopicRegistry;
use crate::metrics::metadata_store::TimedMetadataStore;
use crate::producer_ids::ProducerIdAllocator;
use crate::security::authorizer::Authorizer;
use crate::security::listener::SecurityProtocol;

/// TTL of the broker's lease (docs/DESIGN.md: 10 s); kept alive every third of it.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// Most broker ids tried when generating one (ids taken by `--broker-id` are skipped).
const BROKER_ID_TRIES: i32 = 1_000;
/// How long a configured broker id that is still registered is waited for: a previous
/// incarnation's lease expires within one TTL.
const REGISTER_WAIT_MAX: Duration = Duration::from_secs(25);
const REGISTER_RETRY: Duration = Duration::from_millis(500);
const _: () = assert!(REGISTER_WAIT_MAX.as_secs() > LEASE_TTL.as_secs() * 2);

pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store: Arc<dyn MetadataStore> = match &config.metadata {
        MetadataUrl::Local => Arc::new(
            EmbeddedStore::open(&config.data_dir.join("meta"))
                .await
                .context("open embedded metadata store")?,
        ),
        MetadataUrl::Etcd(etcd) => Arc::new(
            EtcdStore::connect(etcd.clone())
                .await
                .with_context(|| format!("connect to etcd at {:?}", etcd.endpoints))?,
        ),
    };
    // Every metadata call of the broker goes through the timing wrapper (`/metrics`).
    let metrics = crate::metrics::BrokerMetrics::default();
    let meta: Arc<dyn MetadataStore> =
        Arc::new(TimedMetadataStore::new(store, metrics.metadata.clone()));
    let store_options = strato_tiering::store::StoreOptions {
        s3_endpoint: config.s3_endpoint.clone(),
    };
    let store = strato_tiering::store::open_object_store(&config.object_store_url, &store_options)
        .with_context(|| format!("open object store {}", config.object_store_url))?;
    let cache_config = ChunkCacheConfig {
        memory_bytes: config.cache_memory_bytes,
        disk: (config.cache_disk_bytes > 0)
            .then(|| DiskCacheConfig::new(config.cache_dir.clone(), config.cache_disk_bytes)),
    };
    let cache = ChunkCache::open(cache_config)
        .await
        .with_context(|| format!("open chunk cache in {}", config.cache_dir.display()))?;
    let tier = Arc::new(Tier::new(store, cache, tier_config(&config)));

    let tls = match &config.security.tls {
        Some(files) => Some(
            crate::security::tls::Tls::load(files.clone())
                .context("load TLS certificate and key")?,
        ),
        None => None,
    };
    let mut listeners = Vec::with_capacity(config.security.listeners.len());
    let mut endpoints = Vec::with_capacity(config.security.listeners.len());
    for listener_config in &config.security.listeners {
        let protocol = listener_config.protocol;
        let listener = bind_kafka_listener(listener_config.bind).with_context(|| {
            format!("bind Kafka listener {protocol}://{}", listener_config.bind)
        })?;
        let bound = listener.local_addr().context("read bound address")?;
        let (host, port) = listener_config
            .advertised
            .clone()
            .unwrap_or_else(|| (bound.ip().to_string(), bound.port()));
        endpoints.push(BrokerEndpoint {
            listener: protocol.name().to_string(),
            host,
            port,
        });
        listeners.push((protocol, listener, bound));
    }
    let primary = endpoints
        .first()
        .cloned()
        .context("validation guarantees a listener")?;
    // Bound before registering: the registration names the console's port (other brokers'
    // consoles ask this one about the groups it coordinates); served once the broker is up.
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("bind HTTP listener {}", config.http_listen))?;
    let http_bound = http_listener
        .local_addr()
        .context("read bound HTTP address")?;
    let template = BrokerRecord {
        v: RECORD_FORMAT_V1,
        broker_id: -1,
        host: primary.host.clone(),
        port: primary.port,
        rack: config.rack.clone(),
        endpoints,
        http_port: Some(http_bound.port()),
        // Listed from now on, given partitions and groups once it serves (below).
        state: Some(BrokerState::Starting),
    };

    let lease = meta
        .grant_lease(LEASE_TTL)
        .await
        .context("grant broker lease")?;
    let broker_id = register_broker(meta.as_ref(), config.broker_id, lease, &template).await?;
    let me = BrokerRecord {
        broker_id,
        ..template
    };
    let cluster = Arc::new(ClusterView::new(broker_id, me.clone()));
    cluster
        .reload(meta.as_ref())
        .await
        .context("read broker registrations")?;
    let cluster_stop = CancellationToken::new();
    let cluster_watch = tokio::spawn(cluster.clone().run(meta.clone(), cluster_stop.clone()));
    let cluster_id = cluster_id(meta.as_ref()).await?;

    let log = LogWriter::new(
        tier.clone(),
        meta.clone(),
        LogWriterConfig {
            flush_interval: config.flush_interval,
            flush_bytes: config.flush_bytes,
            flush_when_idle: config.flush_when_idle,
            flush_when_idle_min_bytes: config.flush_when_idle_min_bytes,
            idle_gather: crate::log::flush::IDLE_GATHER,
            flush_compress: config.flush_compression == crate::config::FlushCompression::Zstd,
            unflushed_max: u32::try_from(config.max_unflushed_bytes).unwrap_or(u32::MAX),
            uploads_max: config.flush_uploads_max as usize,
            producer_expiration: config.producer_id_expiration,
            gc_grace: config.gc_grace,
        },
    );
    let flush_shutdown = CancellationToken::new();
    let flusher = tokio::spawn(log.clone().run(flush_shutdown.clone()));
    let topics = Arc::new(TopicRegistry::new(meta.clone(), cluster.clone(), lease));
    let loaded = topics.load_all().await.context("load topics")?;
    let authorizer = Arc::new(Authorizer::new(
        config.security.authorizer,
        config.security.super_users.clone(),
    ));
    // ACLs are read before the first connection is served, and followed from then on.
    let acl_watch_stop = CancellationToken::new();
    let acl_watch = if authorizer.is_enabled() {
        let bindings = authorizer.load(meta.as_ref()).await.context("load ACLs")?;
        tracing::info!(bindings, "authorizer enabled");
        Some(tokio::spawn(
            authorizer.clone().run(meta.clone(), acl_watch_stop.clone()),
        ))
    } else {
        None
    };

    let producer_ids = Arc::new(ProducerIdAllocator::new());
    let txns = Arc::new(crate::txn::TxnCoordinator::new(
        meta.clone(),
        cluster.clone(),
        producer_ids.clone(),
        config.txn_limits.clone(),
    ));
    // Every broker keeps the schema registry's copy current, for Produce's schema id
    // validation, whether or not it serves the REST API.
    let registry = Arc::new(crate::schema_registry::store::Registry::new(
        meta.clone(),
        config.schema_registry.limits.clone(),
    ));
    let registry_keys = registry.load().await.context("read the schema registry")?;
    tracing::debug!(keys = registry_keys, "schema registry read");
    let ctx = Arc::new(BrokerCtx {
        broker_id,
        cluster_id,
        cluster: cluster.clone(),
        registration: me.clone(),
        meta: meta.clone(),
        tier,
        topics,
        log,
        replicas: crate::log::replica::ReplicaViews::new(meta.clone()),
        gc: Arc::new(crate::log::gc::GcStats::default()),
        producer_ids: producer_ids.clone(),
        txns: txns.clone(),
        groups: Arc::new(crate::group::GroupCoordinator::new(
            meta.clone(),
            cluster.clone(),
            config.group_limits.clone(),
        )),
        authorizer,
        schemas: registry.clone(),
        request_memory: Arc::new(Semaphore::new(config.max_queued_request_bytes as usize)),
        tls: tls.clone(),
        connections_per_ip: crate::security::limits::ConnectionsPerIp::new(
            config.security.max_connections_per_ip,
        ),
        open_connections: std::sync::atomic::AtomicU64::new(0),
        next_connection_id: std::sync::atomic::AtomicU64::new(0),
        lease_held: std::sync::atomic::AtomicBool::new(true),
        metrics,
        config: config.clone(),
    });
    let leadership_stop = CancellationToken::new();
    let leadership = {
        let ctx = ctx.clone();
        let changes = cluster.subscribe();
        let stop = leadership_stop.clone();
        tokio::spawn(async move { ctx.topics.run_leadership(changes, stop).await })
    };
    let log_tasks = Arc::new(crate::log::LogTasks {
        broker_id: ctx.broker_id,
        meta: ctx.meta.clone(),
        tier: ctx.tier.clone(),
        cluster: ctx.cluster.clone(),
        topics: ctx.topics.clone(),
        log: ctx.log.clone(),
        compaction: ctx.metrics.compaction.clone(),
        cleaner: ctx.metrics.cleaner.clone(),
    });
    let retention_stop = CancellationToken::new();
    let retention = tokio::spawn(crate::log::retention::run(
        log_tasks.clone(),
        config.retention_check_interval,
        retention_stop.clone(),
    ));
    let compaction_stop = CancellationToken::new();
    let compaction = tokio::spawn(crate::log::compaction::run(
        log_tasks.clone(),
        config.compaction_interval,
        config.compaction_target_bytes,
        config.compaction_frame_bytes,
        config.cleaner_memory_bytes,
        compaction_stop.clone(),
    ));
    let markers_stop = CancellationToken::new();
    let markers = tokio::spawn(crate::log::markers::run(log_tasks, markers_stop.clone()));
    let gc_stop = CancellationToken::new();
    let gc = tokio::spawn(crate::log::gc::run(
        meta.clone(),
        ctx.tier.clone(),
        cluster.clone(),
        ctx.gc.clone(),
        config.gc_interval,
        config.gc_grace,
        gc_stop.clone(),
    ));
    let tls_reload_stop = CancellationToken::new();
    let tls_reload = tls
        .clone()
        .map(|tls| tokio::spawn(tls.run_reloads(tls_reload_stop.clone())));
    let txn_stop = CancellationToken::new();
    let txn_task = tokio::spawn(txns.clone().run(txn_stop.clone()));
    let group_timers_stop = CancellationToken::new();
    let group_timers = tokio::spawn(ctx.groups.clone().run_timers(group_timers_stop.clone()));
    // The lease outlives the drain: it is revoked only after the final flush.
    let keep_alive_stop = CancellationToken::new();
    let keep_alive = spawn_keep_alive(ctx.clone(), lease, keep_alive_stop.clone());
    tracing::info!(
        broker_id,
        topics = loaded,
        object_store = %config.object_store_url,
        advertised = %format!("{}:{}", me.host, me.port),
        "broker ready"
    );
    let http_shutdown = CancellationToken::new();
    let http = tokio::spawn(crate::http::serve(
        http_listener,
        ctx.clone(),
        http_shutdown.clone(),
    ));
    tracing::info!(addr = %http_bound, "http listener bound");
    let registry_stop = CancellationToken::new();
    let registry_tasks = start_schema_registry(
        &config,
        registry,
        meta.clone(),
        ctx.authorizer.clone(),
        registry_stop.clone(),
    )
    .await
    .context("start the schema registry")?;
    // Tests and scripts read these lines to learn the ports when listeners use port 0.
    for (protocol, _, bound) in &listeners {
        tracing::info!(addr = %bound, listener = %protocol, "kafka listener bound");
    }
    let listeners = listeners
        .into_iter()
        .map(|(protocol, listener, _)| (protocol, listener))
        .collect();
    // Ready (its object store answers too): from then on the other brokers give this one
    // its share. Connections are served meanwhile.
    let serving_stop = CancellationToken::new();
    let serving = tokio::spawn(become_serving(ctx.clone(), serving_stop.clone()));
    accept_loop(
        listeners,
        ctx.clone(),
        shutdown.clone(),
        leadership_stop.clone(),
        (serving_stop, serving),
    )
    .await;
    retention_stop.cancel();
    let _ = retention.await;
    gc_stop.cancel();
    let _ = gc.await;
    compaction_stop.cancel();
    let _ = compaction.await;
    // Markers already appended are flushed below; the rest stay requested for the next
    // leader.
    markers_stop.cancel();
    let _ = markers.await;
    let _ = leadership.await;

    tracing::info!("draining: flushing accepted batches");
    flush_shutdown.cancel();
    if let Err(err) = flusher.await {
        tracing::error!("flusher task failed: {err}");
    }
    keep_alive_stop.cancel();
    txn_stop.cancel();
    let _ = txn_task.await;
    group_timers_stop.cancel();
    let _ = group_timers.await;
    cluster_stop.cancel();
    let _ = cluster_watch.await;
    acl_watch_stop.cancel();
    if let Some(acl_watch) = acl_watch {
        let _ = acl_watch.await;
    }
    http_shutdown.cancel();
    let _ = http.await;
    registry_stop.cancel();
    for task in registry_tasks {
        let _ = task.await;
    }
    tls_reload_stop.cancel();
    if let Some(task) = tls_reload {
        let _ = task.await;
    }
    let lease = keep_alive.await.unwrap_or(lease);
    if let Err(err) = meta.revoke_lease(lease).await {
        tracing::warn!("failed to revoke broker lease: {err:#}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the watch that keeps the schema registry's copy current and, unless
/// `--schema-registry-listen` disables it, binds the REST API and serves it; both end when
/// `stop` is cancelled.
async fn start_schema_registry(
    config: &Config,
    registry: Arc<crate::schema_registry::store::Registry>,
    meta: Arc<dyn MetadataStore>,
    authorizer: Arc<Authorizer>,
    stop: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    use crate::schema_registry::api;
    let watch = tokio::spawn(registry.clone().run(stop.clone()));
    let Some(addr) = config.schema_registry.listen else {
        tracing::info!("schema registry REST API disabled");
        return Ok(vec![watch]);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind schema registry listener {addr}"))?;
    let bound = listener
        .local_addr()
        .context("read bound schema registry address")?;
    let auth = config.schema_registry.basic_auth.then(|| {
        Arc::new(crate::schema_registry::auth::RegistryAuth::new(
            meta, authorizer,
        ))
    });
    let server = tokio::spawn(api::serve(listener, registry, auth, stop));
    // Tests and scripts read this line to learn the port when the address uses port 0.
    tracing::info!(addr = %bound, "schema registry listener bound");
    Ok(vec![watch, server])
}

async fn accept_loop(
    listeners: Vec<(SecurityProtocol, TcpListener)>,
    ctx: Arc<BrokerCtx>,
    shutdown: CancellationToken,
    leadership_stop: CancellationToken,
    (serving_stop, serving): (CancellationToken, tokio::task::JoinHandle<()>),
) {
    let connections = Arc::new(Semaphore::new(ctx.config.max_connections));
    let conn_shutdown = CancellationToken::new();
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|(protocol, listener)| {
            tokio::spawn(accept_connections(
                listener,
                protocol,
                ctx.clone(),
                connections.clone(),
                shutdown.clone(),
                conn_shutdown.clone(),
            ))
        })
        .collect();
    for task in accepting {
        if let Err(err) = task.await {
            tracing::error!("accept task failed: {err}");
        }
    }
    // A planned hand-over first, while connections still answer (with the new leaders).
    // A broker still waiting to serve stops waiting first, so that its last state write is
    // the draining one.
    serving_stop.cancel();
    let _ = serving.await;
    hand_over(&ctx).await;
    // Connections stop taking requests and answer those they admitted; their produce
    // batches are made durable by the flusher, which keeps running until they are done.
    conn_shutdown.cancel();
    // No partition is taken over while draining: other brokers take ours once the lease
    // is revoked.
    leadership_stop.cancel();
    ctx.log.start_draining();
    // Members waiting for a rebalance look for the coordinator again (after a restart, or
    // on another broker) instead of holding the drain up.
    ctx.groups.abandon_waiters();
    let all = u32::try_from(ctx.config.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        crate::connection::DRAIN_TIMEOUT + Duration::from_secs(1),
        connections.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the drain timeout");
    }
}

/// How long a draining broker waits for its partitions to be released (each waits at most
/// `RELEASE_FLUSH_WAIT` for its accepted batches) before it stops serving anyway.
const HAND_OVER_WAIT: Duration = Duration::from_secs(10);

/// The planned part of a drain: the broker says it is draining, so every broker (this one
/// too) computes owners without it; it releases its partitions at once (each after its
/// accepted batches committed), and the serving brokers take them, and its groups, while
/// its connections still answer: produce gets NOT_LEADER_OR_FOLLOWER and Metadata the new
/// leaders, which clients follow. A broker that cannot publish the state (the metadata
/// store unreachable) or is the last one keeps its partitions: the lease revoke at the end
/// of the drain hands them over as before.
async fn hand_over(ctx: &Arc<BrokerCtx>) {
    let started = tokio::time::Instant::now();
    if let Err(err) = publish_state(ctx, Some(BrokerState::Draining)).await {
        tracing::warn!(
            "failed to register as draining; partitions move when the lease ends: {err:#}"
        );
        return;
    }
    let deadline = started + HAND_OVER_WAIT;
    loop {
        ctx.topics.reconcile().await;
        let led = ctx
            .topics
            .all()
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| !p.lock().fenced)
            .count();
        if led == 0 {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "draining: partitions handed over"
            );
            return;
        }
        if !ctx.cluster.others_serve() {
            tracing::info!(led, "draining: no serving broker to hand partitions to");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                led,
                "draining: partitions still led after the hand-over wait"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long the object store may take to answer the start-up probe.
const SERVING_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between failed attempts to become serving.
const SERVING_RETRY: Duration = Duration::from_secs(1);

/// Registers this broker as serving once it is ready as `/ready` means it (the metadata
/// store takes the write, the object store answers a probe, the lease is held), retrying
/// until then or until `stop`. Checked between attempts only, never in the middle of a
/// write, so a drain that stops it knows no serving write lands after its own.
async fn become_serving(ctx: Arc<BrokerCtx>, stop: CancellationToken) {
    let mut warned = false;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let attempt = async {
            ctx.tier
                .probe(SERVING_PROBE_TIMEOUT)
                .await
                .context("probe the object store")?;
            anyhow::ensure!(
                ctx.lease_held.load(Ordering::Relaxed),
                "the broker lease is not held"
            );
            publish_state(&ctx, None).await
        };
        match attempt.await {
            Ok(()) => {
                tracing::info!(
                    broker_id = ctx.broker_id,
                    "serving: taking a share of partitions and groups"
                );
                return;
            }
            Err(err) if !warned => {
                warned = true;
                tracing::warn!("not ready to serve yet, will retry: {err:#}");
            }
            Err(err) => tracing::debug!("not ready to serve yet: {err:#}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SERVING_RETRY) => {}
        }
    }
}

/// Writes this broker's registration with `state` (under its current lease) and makes its
/// own view follow.
async fn publish_state(ctx: &BrokerCtx, state: Option<BrokerState>) -> anyhow::Result<()> {
    let record = BrokerRecord {
        state,
        ..ctx.cluster.me()
    };
    ctx.meta
        .txn(Txn::new().put_with_lease(
            keys::broker(ctx.broker_id),
            record.encode(),
            ctx.topics.lease(),
        ))
        .await
        .context("write the broker registration")?;
    ctx.cluster.set_my_state(state);
    Ok(())
}

/// Connections the kernel queues for a Kafka listener before the broker accepts them (capped
/// by `net.core.somaxconn`). The standard library's 128 is too few: thousands of clients
/// reconnecting at once (after a restart), or waiting while `--max-connections` is reached,
/// would see their connection attempts dropped and retried seconds later.
const KAFKA_LISTEN_BACKLOG: u32 = 4096;

fn bind_kafka_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted broker binds its port again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(KAFKA_LISTEN_BACKLOG)
}

/// Accepts the connections of one listener until shutdown, each under a permit of the
/// broker-wide connection limit.
async fn accept_connections(
    listener: TcpListener,
    protocol: SecurityProtocol,
    ctx: Arc<BrokerCtx>,
    connections: Arc<Semaphore>,
    shutdown: CancellationToken,
    conn_shutdown: CancellationToken,
) {
    loop {
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every slot is taken: the next connection waits in the accept queue.
                ctx.metrics.limits.reached(Limit::Connections);
                tokio::select! {
                    permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and similar: back off briefly, keep serving.
                    tracing::warn!("failed to accept connection: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let Some(ip_permit) = ctx.connections_per_ip.try_acquire(peer.ip()) else {
            ctx.metrics.security.refused_per_ip();
            ctx.metrics.limits.reached(Limit::ConnectionsPerIp);
            tracing::debug!(%peer, "connection refused: --max-connections-per-ip reached");
            continue;
        };
        let ctx = ctx.clone();
        let token = conn_shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, protocol, ctx, token).await;
            drop(ip_permit);
            drop(permit);
        });
    }
}

/// Completes the TLS handshake of a TLS listener's connection (bounded by
/// `tls::HANDSHAKE_TIMEOUT`), then serves it.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    protocol: SecurityProtocol,
    ctx: Arc<BrokerCtx>,
    shutdown: CancellationToken,
) {
    use crate::security::{Session, principal::Principal, tls};
    if !protocol.uses_tls() {
        let session = Session::new(peer, protocol, Principal::anonymous());
        crate::connection::serve(stream, session, ctx, shutdown).await;
        return;
    }
    let acceptor = ctx
        .tls
        .as_ref()
        .expect("validation requires TLS files for TLS listeners")
        .acceptor(protocol);
    let handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            ctx.metrics.security.tls_handshake_failed();
            tracing::info!(%peer, listener = %protocol, "TLS handshake failed: {err}");
            return;
        }
        Err(_) => {
            ctx.metrics.security.tls_handshake_failed();
            tracing::info!(%peer, listener = %protocol, "TLS handshake timed out");
            return;
        }
    };
    // SSL listeners with a client CA verified the client's certificate: it names the
    // principal. SASL_SSL connections authenticate with SASL.
    let principal = match protocol {
        SecurityProtocol::Ssl => stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(tls::certificate_principal)
            .unwrap_or_else(Principal::anonymous),
        _ => Principal::anonymous(),
    };
    if protocol == SecurityProtocol::Ssl
        && ctx
            .tls
            .as_ref()
            .is_some_and(|t| t.requires_client_certificate())
    {
        tracing::debug!(%peer, %principal, "TLS client authenticated");
    }
    let session = Session::new(peer, protocol, principal);
    crate::connection::serve(stream, session, ctx, shutdown).await;
}

/// Registers this broker under its lease: the configured id, or a newly generated one.
/// A configured id that is still registered is most likely our own previous incarnation
/// (killed and restarted at once), whose registration goes when its lease expires: wait
/// for that (bounded) before giving up.
async fn register_broker(
    meta: &dyn MetadataStore,
    wanted: Option<i32>,
    lease: LeaseId,
    template: &BrokerRecord,
) -> anyhow::Result<i32> {
    let give_up = tokio::time::Instant::now() + REGISTER_WAIT_MAX;
    loop {
        if let Some(id) = try_register(meta, wanted, lease, template).await? {
            return Ok(id);
        }
        let id = wanted.expect("only a configured id can be taken");
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!("broker id {id} is registered by another live broker");
        }
        tracing::warn!(
            broker_id = id,
            "broker id still registered (a previous incarnation's lease?); waiting for it to expire"
        );
        tokio::time::sleep(REGISTER_RETRY).await;
    }
}

/// Takes the next generated broker id (`cluster/next_broker_id`, bumped by compare-and-set):
/// a broker started without `--broker-id` gets an id no broker had before, as Kafka's
/// generated ids. Reusing the lowest free id instead gave a restarted broker the id of
/// another broker at another address, which librdkafka's group coordinator lookup could
/// stall on (found by the chaos runner: seed 8, 10 steps).
async fn next_generated_id(meta: &dyn MetadataStore) -> anyhow::Result<i32> {
    use strato_metadata::model::BrokerIdCounterRecord;
    loop {
        let current = meta
            .get(keys::BROKERS_NEXT_ID)
            .await
            .context("read the broker id counter")?;
        let (next_id, version) = match &current {
            Some(v) => (
                BrokerIdCounterRecord::decode(keys::BROKERS_NEXT_ID, &v.value)?.next_id,
                v.version,
            ),
            None => (0, 0),
        };
        let bumped = BrokerIdCounterRecord {
            v: RECORD_FORMAT_V1,
            next_id: next_id.checked_add(1).context("broker ids are exhausted")?,
        };
        let txn = Txn::new()
            .when_version(keys::BROKERS_NEXT_ID, version)
            .put(keys::BROKERS_NEXT_ID, bumped.encode());
        match meta.txn(txn).await {
            Ok(_) => return Ok(next_id),
            Err(MetadataError::Conflict { .. }) => continue,
            Err(err) => return Err(err).context("bump the broker id counter"),
        }
    }
}

/// One registration attempt: `None` if the configured id is taken.
async fn try_register(
    meta: &dyn MetadataStore,
    wanted: Option<i32>,
    lease: LeaseId,
    template: &BrokerRecord,
) -> anyhow::Result<Option<i32>> {
    let candidates: Box<dyn Iterator<Item = i32> + Send> = match wanted {
        Some(id) => Box::new(std::iter::once(id)),
        // A configured id may sit in the way: the next ones are tried.
        None => {
            let start = next_generated_id(meta).await?;
            Box::new(start..start.saturating_add(BROKER_ID_TRIES))
        }
    };
    for id in candidates {
        let record = BrokerRecord {
            broker_id: id,
            ..template.clone()
        };
        let key = keys::broker(id);
        match meta
            .txn(
                Txn::new()
                    .when_version(&key, 0)
                    .put_with_lease(&key, record.encode(), lease),
            )
            .await
        {
            Ok(_) => return Ok(Some(id)),
            Err(MetadataError::Conflict { .. }) if wanted.is_none() => continue,
            Err(MetadataError::Conflict { .. }) => return Ok(None),
            Err(err) => return Err(err).context("register broker"),
        }
    }
    anyhow::bail!("no free broker id in {BROKER_ID_TRIES} tries")
}

async fn cluster_id(meta: &dyn MetadataStore) -> anyhow::Result<String> {
    loop {
        if let Some(v) = meta
            .get(keys::CLUSTER_ID)
            .await
            .context("read cluster id")?
        {
            return Ok(ClusterRecord::decode(keys::CLUSTER_ID, &v.value)?.cluster_id);
        }
        let record = ClusterRecord {
            v: RECORD_FORMAT_V1,
            cluster_id: uuid::Uuid::new_v4().simple().to_string(),
        };
        match meta
            .txn(
                Txn::new()
                    .when_version(keys::CLUSTER_ID, 0)
                    .put(keys::CLUSTER_ID, record.encode()),
            )
            .await
        {
            Ok(_) => return Ok(record.cluster_id),
            Err(MetadataError::Conflict { .. }) => continue,
            Err(err) => return Err(err).context("create cluster id"),
        }
    }
}

/// Keeps the broker lease alive. If it may have expired (no successful keep-alive for a
/// whole TTL) the broker stops leading at once; once etcd says the lease is gone, it takes a
/// new lease, registers again and re-takes its partitions with new epochs.
fn spawn_keep_alive(
    ctx: Arc<BrokerCtx>,
    mut lease: LeaseId,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<LeaseId> {
    tokio::spawn(async move {
        let meta = ctx.meta.clone();
        let mut tick = tokio::time::interval(LEASE_TTL / 3);
        let mut last_ok = tokio::time::Instant::now();
        let mut fenced = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return lease,
            }
            match meta.keep_alive(lease).await {
                Ok(()) => {
                    last_ok = tokio::time::Instant::now();
                    ctx.lease_held.store(true, Ordering::Relaxed);
                }
                Err(MetadataError::LeaseNotFound(_)) => {
                    tracing::error!("broker lease lost: stopping leadership of all partitions");
                    ctx.lease_held.store(false, Ordering::Relaxed);
                    ctx.topics.fence_all();
                    match regain_leadership(&ctx).await {
                        Ok(new_lease) => {
                            lease = new_lease;
                            last_ok = tokio::time::Instant::now();
                            ctx.lease_held.store(true, Ordering::Relaxed);
                            fenced = false;
                            tracing::info!("broker lease renewed; partitions re-acquired");
                        }
                        Err(err) => {
                            fenced = true;
                            tracing::warn!("failed to regain leadership, will retry: {err:#}");
                        }
                    }
                    continue;
                }
                Err(err) => tracing::warn!("failed to keep the broker lease alive: {err:#}"),
            }
            if !fenced && last_ok.elapsed() >= LEASE_TTL {
                // The lease may have expired while we could not reach the store: another
                // broker may lead now, so stop admitting produce requests.
                tracing::error!("broker lease not renewed for a whole TTL: stopping leadership");
                ctx.lease_held.store(false, Ordering::Relaxed);
                ctx.topics.fence_all();
                fenced = true;
            }
        }
    })
}

async fn regain_leadership(ctx: &BrokerCtx) -> anyhow::Result<LeaseId> {
    let lease = ctx
        .meta
        .grant_lease(LEASE_TTL)
        .await
        .context("grant broker lease")?;
    register_broker(
        ctx.meta.as_ref(),
        Some(ctx.broker_id),
        lease,
        &ctx.cluster.me(),
    )
    .await?;
    ctx.topics
        .reacquire_all(lease)
        .await
        .context("re-acquire partitions")?;
    Ok(lease)
}

/// Largest `TierConfig::whole_object_bytes_max` a broker uses, whatever its flush size:
/// a whole-object read holds the compressed object in memory while it decodes.
const WHOLE_OBJECT_BYTES_CAP: u64 = 64 * 1024 * 1024;

/// Object store settings of the broker: cold reads may fetch a flush object whole up to the
/// largest a flush writes — the open segment, which backpressure bounds at
/// `--max-unflushed-bytes` (a flush overshoots `--flush-bytes` while the previous one is
/// uploading; under load objects of 3-4x `--flush-bytes` are common) — at least the
/// default, at most `WHOLE_OBJECT_BYTES_CAP`.
fn tier_config(config: &Config) -> TierConfig {
    TierConfig {
        whole_object_bytes_max: config
            .max_unflushed_bytes
            .max(config.flush_bytes.saturating_mul(2))
            .clamp(
                strato_tiering::WHOLE_OBJECT_BYTES_MAX_DEFAULT,
                WHOLE_OBJECT_BYTES_CAP,
            ),
        ..TierConfig::default()
    }
}
