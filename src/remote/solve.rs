//! One build on the daemon, through the gateway.
//!
//! dockerd 20.10's `moby` exporter ignores the `containerimage.config` exporter attribute on
//! a plain Solve, so bud solves as a frontend would: Control.Solve with no definition and no
//! frontend registers a build that waits for a gateway client; bud then calls the LLB bridge
//! (tagged with the build's ref) to solve the definition and returns the result with the
//! image config in its metadata. Control.Solve finishes once the exporter has run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bud_proto::control::control_client::ControlClient;
use bud_proto::control::{self, StatusRequest};
use bud_proto::gateway::llb_bridge_client::LlbBridgeClient;
use bud_proto::gateway::{self, PingRequest, ReturnRequest};
use bud_proto::{apicaps, pb, rpc};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use super::progress::StatusMapper;
use super::session::{ExportTarget, Offer, Session, TransferCounters};
use super::transport::{self, GrpcChannel, origin};
use super::{
    Addr, BuildFailure, DaemonImages, Exporter, GraphError, GraphSource, RemoteError, RemoteSolver,
    SolveRequest, SolveResult, random_id,
};
use crate::progress::ProgressSink;

/// The metadata key the gateway forwarder finds the build by.
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";
/// Large definitions and results are legitimate; gRPC's default of 4 MiB is not a limit
/// the daemon imposes on its side.
const MAX_MESSAGE: usize = 64 << 20;

/// Aborts a background task when the solve that owns it ends, however it ends.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the gateway side of a solve failed.
enum BridgeError {
    /// The definition cannot run here; reported as is.
    Refused(RemoteError),
    /// The build failed; the daemon's message is the one to show.
    Build(BuildFailure),
    /// The bridge could not be reached (often because Control.Solve failed first).
    Call(RemoteError),
    /// The deferred graph could not be made.
    Graph(GraphError),
}

impl RemoteSolver {
    /// Runs `req.definition` on the daemon and exports the result.
    pub async fn solve(&self, req: SolveRequest<'_>) -> Result<SolveResult, RemoteError> {
        let SolveRequest {
            session_id,
            graph,
            local_dirs,
            exporter,
            more_exporters,
            secrets,
            ssh_agents,
            oci_layouts,
            progress,
            cancel,
            cache_imports,
            cache_exports,
            entitlements,
            platform,
            frontend_attrs,
        } = req;

        // Local caches are directories of this side, which the daemon reads and writes
        // through the session.
        let mut local_caches = {
            let (exports, progress) = (cache_exports.clone(), progress.clone());
            tokio::task::spawn_blocking(move || {
                super::local_cache::LocalCaches::prepare(cache_imports, &exports, &progress)
            })
            .await
            .map_err(|e| RemoteError::Protocol(crate::error_chain::error_chain(&e)))??
        };
        let cache_imports = local_caches.imports.clone();
        let counters = Arc::new(TransferCounters::default());
        let mut requested = Vec::new();
        let mut targets = Vec::new();
        for (index, e) in std::iter::once(&exporter)
            .chain(&more_exporters)
            .enumerate()
        {
            let (name, attrs, sends) = exporter_request(e);
            if let Some(sends) = sends {
                targets.push((index, sends));
            }
            requested.push((name, attrs));
        }
        let shared_key = shared_key(local_dirs.values().next().map(|d| d.path.as_path()));
        let session = Session::new(
            session_id,
            "bud".to_string(),
            shared_key,
            Offer {
                dirs: local_dirs,
                secrets: &secrets,
                ssh_agents,
                oci_layouts,
                local_caches: std::mem::take(&mut local_caches.stores),
                exports: targets,
            },
            counters.clone(),
        );
        let build_ref = random_id();

        let work = async {
            let _session = self.start_session(&session).await?;
            let exporter_response = self
                .run(
                    &build_ref,
                    &session.id,
                    graph,
                    Requested {
                        exporters: requested,
                        cache_imports: &cache_imports,
                        cache_exports: &cache_exports,
                        entitlements: &entitlements,
                        platform: platform.as_deref(),
                        frontend_attrs: &frontend_attrs,
                    },
                    &progress,
                )
                .await?;
            Ok::<_, RemoteError>(exporter_response)
        };
        // Dropping the calls resets their HTTP/2 streams, which cancels the build.
        let exporter_response = tokio::select! {
            r = work => r?,
            () = cancel.cancelled() => return Err(RemoteError::Cancelled),
        };
        // The session (and its writes to the cache directories) ends before the index names
        // what was written.
        drop(session);
        let response = exporter_response.clone();
        tokio::task::spawn_blocking(move || local_caches.name_exported(&response))
            .await
            .map_err(|e| RemoteError::Protocol(crate::error_chain::error_chain(&e)))??;
        Ok(SolveResult {
            image_id: exporter_response.get("containerimage.digest").cloned(),
            exporter_response,
            transfers: counters.snapshot(),
            build_ref,
        })
    }

    /// Connects the session and serves it in the background until the guard is dropped.
    async fn start_session(&self, session: &Session) -> Result<AbortOnDrop<()>, RemoteError> {
        let router = session.router();
        let task = match &self.addr {
            Addr::Docker { socket } => {
                let io = transport::docker_upgrade(socket, "/session", &session.headers()).await?;
                tokio::spawn(async move {
                    if let Err(e) = transport::serve_h2(io, router).await {
                        tracing::debug!("session connection ended: {e}");
                    }
                })
            }
            Addr::Unix(_) | Addr::Tcp(_) | Addr::DockerContainer(_) | Addr::KubePod(_) => {
                let control = ControlClient::with_origin(self.channel.clone(), origin());
                let io = super::session::open_tunnel(control, session)?;
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(io);
                    if let Err(e) = transport::serve_h2(io, router).await {
                        tracing::debug!("session tunnel ended: {e}");
                    }
                })
            }
        };
        Ok(AbortOnDrop(task))
    }

    async fn run(
        &self,
        build_ref: &str,
        session_id: &str,
        graph: GraphSource<'_>,
        outputs: Requested<'_>,
        progress: &ProgressSink,
    ) -> Result<BTreeMap<String, String>, RemoteError> {
        let control = ControlClient::with_origin(self.channel.clone(), origin())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);

        let got_status = Arc::new(AtomicBool::new(false));
        let status = AbortOnDrop(tokio::spawn(pump_status(
            control.clone(),
            build_ref.to_string(),
            progress.clone(),
            got_status.clone(),
        )));

        // A frontend of the daemon's makes the graph itself; otherwise bud is the frontend,
        // on the gateway.
        let (frontend, mut frontend_attrs, graph) = match graph {
            GraphSource::Frontend { name, attrs } => (name, attrs, None),
            other => {
                let attrs = outputs
                    .platform
                    .map(|p| BTreeMap::from([("platform".to_owned(), p.to_owned())]))
                    .unwrap_or_default();
                (String::new(), attrs, Some(other))
            }
        };
        frontend_attrs.extend(outputs.frontend_attrs.clone());
        let solve = {
            let mut control = control.clone();
            // One exporter goes in the fields every BuildKit reads (dockerd 20.10's knows
            // no other); several in `exporters`, which BuildKit 0.13 and later prefer.
            let (exporter, exporter_attrs) = outputs.exporters.first().cloned().unwrap_or_default();
            let exporters = match outputs.exporters.len() {
                0 | 1 => Vec::new(),
                _ => outputs
                    .exporters
                    .iter()
                    .map(|(kind, attrs)| control::Exporter {
                        r#type: kind.to_string(),
                        attrs: attrs.clone().into_iter().collect(),
                    })
                    .collect(),
            };
            let req = control::SolveRequest {
                r#ref: build_ref.to_string(),
                session: session_id.to_string(),
                frontend,
                frontend_attrs: frontend_attrs.into_iter().collect(),
                exporter: exporter.to_string(),
                exporter_attrs: exporter_attrs.into_iter().collect(),
                exporters,
                cache: Some(control::CacheOptions {
                    imports: outputs.cache_imports.iter().map(control_entry).collect(),
                    exports: outputs.cache_exports.iter().map(control_entry).collect(),
                    ..Default::default()
                }),
                entitlements: outputs.entitlements.to_vec(),
                ..Default::default()
            };
            async move { control.solve(req).await }
        };
        // The daemon imports the caches for the frontend, and bud is the frontend here: its
        // solve names them as the Dockerfile frontend's does.
        let imports = outputs
            .cache_imports
            .iter()
            .map(|c| gateway::CacheOptionsEntry {
                r#type: c.kind.clone(),
                attrs: c.attrs.clone().into_iter().collect(),
            })
            .collect();
        // The definition sent, to place a failure the daemon does not.
        let sent = std::sync::Mutex::new(None);
        let bridge = async {
            match graph {
                Some(graph) => {
                    drive_bridge(
                        self.channel.clone(),
                        build_ref,
                        session_id,
                        graph,
                        imports,
                        &sent,
                    )
                    .await
                }
                None => Ok(()),
            }
        };
        let (solved, bridged) = tokio::join!(solve, bridge);

        // The Status stream ends when the daemon discards the build; a build that never
        // started (refused before it existed) has no stream to wait for.
        let mut status = status;
        let failed_vertices = if got_status.load(Ordering::SeqCst) {
            (&mut status.0).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let sent = sent
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let failed = |mut failure: BuildFailure| {
            if let Some(definition) = &sent {
                failure.locate(definition, &failed_vertices);
            }
            RemoteError::Build(failure)
        };

        match (solved, bridged) {
            (Ok(resp), Ok(())) => Ok(resp.into_inner().exporter_response),
            (_, Err(BridgeError::Refused(e))) => Err(e),
            (_, Err(BridgeError::Graph(e))) => Err(RemoteError::Graph(e)),
            (_, Err(BridgeError::Build(failure))) => Err(failed(failure)),
            (Err(status), Err(BridgeError::Call(_)) | Ok(())) => {
                Err(failed(BuildFailure::from_status(&status)))
            }
            (Ok(_), Err(BridgeError::Call(e))) => Err(e),
        }
    }
}

/// What a solve is asked for besides its graph: the exporter and its attributes, the caches
/// it imports and exports, the entitlements it may use.
struct Requested<'a> {
    /// BuildKit's exporters by type, with their attributes.
    exporters: Vec<(&'static str, BTreeMap<String, String>)>,
    cache_imports: &'a [super::CacheEntry],
    cache_exports: &'a [super::CacheEntry],
    entitlements: &'a [String],
    platform: Option<&'a str>,
    frontend_attrs: &'a BTreeMap<String, String>,
}

/// The exporter BuildKit runs for `e`, its attributes, and where files it sends go.
fn exporter_request(
    e: &Exporter,
) -> (&'static str, BTreeMap<String, String>, Option<ExportTarget>) {
    match e {
        // An empty name is an invalid reference to the exporter: leave it out.
        Exporter::Moby { names } if names.is_empty() => ("moby", BTreeMap::new(), None),
        Exporter::Moby { names } => (
            "moby",
            BTreeMap::from([("name".to_string(), names.join(","))]),
            None,
        ),
        Exporter::Local {
            dest,
            merge_platforms,
            epoch,
        } => {
            let mut attrs = epoch_attr(*epoch);
            if *merge_platforms {
                attrs.insert("platform-split".to_string(), "false".to_string());
            }
            (
                "local",
                attrs,
                Some(ExportTarget::Dir {
                    dest: dest.clone(),
                    epoch: *epoch,
                }),
            )
        }
        Exporter::Tar { dest, epoch } => (
            "tar",
            epoch_attr(*epoch),
            Some(ExportTarget::Tar(dest.clone())),
        ),
        Exporter::Image { attrs } => ("image", attrs.clone(), None),
        Exporter::Archive { kind, dest, attrs } => (
            kind.exporter(),
            attrs.clone(),
            Some(ExportTarget::Tar(dest.clone())),
        ),
    }
}

/// The epoch as the exporter's `source-date-epoch`: bud builds the LLB itself, so the
/// daemon's frontend does not pass the build arg on to the exporter as it does for buildx.
fn epoch_attr(epoch: Option<i64>) -> BTreeMap<String, String> {
    epoch
        .map(|e| ("source-date-epoch".to_string(), e.to_string()))
        .into_iter()
        .collect()
}

fn control_entry(entry: &super::CacheEntry) -> control::CacheOptionsEntry {
    control::CacheOptionsEntry {
        r#type: entry.kind.clone(),
        attrs: entry.attrs.clone().into_iter().collect(),
    }
}

/// Streams the build's progress into `sink` until the daemon ends the stream; returns the
/// vertices that failed, in the order they did.
async fn pump_status(
    mut control: ControlClient<GrpcChannel>,
    build_ref: String,
    sink: ProgressSink,
    got_status: Arc<AtomicBool>,
) -> Vec<(String, String)> {
    let mut stream = match control.status(StatusRequest { r#ref: build_ref }).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => {
            tracing::debug!("no progress from the daemon: {}", status.message());
            return Vec::new();
        }
    };
    let mut mapper = StatusMapper::default();
    while let Some(Ok(resp)) = stream.next().await {
        got_status.store(true, Ordering::SeqCst);
        mapper.forward(resp, &sink);
    }
    mapper.failed
}

pub(super) fn with_build_id<T>(build_ref: &str, msg: T) -> Result<tonic::Request<T>, RemoteError> {
    let mut req = tonic::Request::new(msg);
    let value = build_ref
        .parse()
        .map_err(|e| RemoteError::Protocol(format!("build ref {build_ref:?}: {e}")))?;
    req.metadata_mut().insert(BUILD_ID_KEY, value);
    Ok(req)
}

fn bridge_request<T>(build_ref: &str, msg: T) -> Result<tonic::Request<T>, BridgeError> {
    with_build_id(build_ref, msg).map_err(BridgeError::Call)
}

async fn drive_bridge(
    channel: GrpcChannel,
    build_ref: &str,
    session_id: &str,
    graph: GraphSource<'_>,
    cache_imports: Vec<gateway::CacheOptionsEntry>,
    sent: &std::sync::Mutex<Option<pb::Definition>>,
) -> Result<(), BridgeError> {
    let mut bridge = LlbBridgeClient::with_origin(channel, origin())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

    let pong = bridge
        .ping(bridge_request(build_ref, PingRequest {})?)
        .await
        .map_err(|s| BridgeError::Call(RemoteError::grpc("LLBBridge.Ping", s)))?
        .into_inner();
    let graph = match graph {
        GraphSource::Frontend { .. } => {
            return Err(BridgeError::Refused(RemoteError::Protocol(
                "internal error: a daemon frontend's build has no graph of bud's".into(),
            )));
        }
        GraphSource::Ready(graph) => graph,
        GraphSource::Deferred(make) => {
            let images = DaemonImages::new(
                bridge.clone(),
                build_ref.to_string(),
                session_id.to_string(),
            )
            .with_llb_caps(&pong.llb_caps);
            match make(images).await {
                Ok(graph) => graph,
                Err(e) => {
                    end_build(
                        &mut bridge,
                        build_ref,
                        tonic::Code::Cancelled,
                        crate::error_chain::error_chain(&*e),
                    )
                    .await?;
                    return Err(BridgeError::Graph(e));
                }
            }
        }
    };
    let record_sent = |definition: &pb::Definition| {
        *sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(definition.clone());
    };
    let definitions: Vec<&pb::Definition> = if graph.platforms.is_empty() {
        vec![&graph.definition]
    } else {
        graph.platforms.iter().map(|p| &p.definition).collect()
    };
    record_sent(definitions[0]);
    for definition in &definitions {
        if let Err(refused) = check_caps(definition, &pong.llb_caps) {
            end_build(
                &mut bridge,
                build_ref,
                tonic::Code::FailedPrecondition,
                refused.to_string(),
            )
            .await?;
            return Err(BridgeError::Refused(refused));
        }
    }

    // Every platform's graph at once, as the Dockerfile frontend solves them: the daemon
    // runs the ops they share once, and the first failure drops (so cancels) the others.
    let mut solves: futures_util::stream::FuturesUnordered<_> = definitions
        .iter()
        .enumerate()
        .map(|(i, definition)| {
            let mut bridge = bridge.clone();
            let request = bridge_request(
                build_ref,
                gateway::SolveRequest {
                    definition: Some((*definition).clone()),
                    allow_result_return: true,
                    cache_imports: cache_imports.clone(),
                    ..Default::default()
                },
            );
            async move {
                let solved = match request {
                    Ok(request) => Ok(bridge.solve(request).await),
                    Err(e) => Err(e),
                };
                (i, solved)
            }
        })
        .collect();
    let mut results: Vec<Option<gateway::result::Result>> = vec![None; definitions.len()];
    while let Some((i, solved)) = solves.next().await {
        let solved = match solved? {
            Ok(resp) => resp.into_inner(),
            Err(status) => {
                drop(solves);
                // The failing platform's graph is the one to place the failure in.
                record_sent(definitions[i]);
                end_build(
                    &mut bridge,
                    build_ref,
                    status.code(),
                    status.message().to_string(),
                )
                .await?;
                return Err(BridgeError::Build(BuildFailure::from_status(&status)));
            }
        };
        let result_ref = match solved.result.and_then(|r| r.result) {
            Some(r) => r,
            None if !solved.r#ref.is_empty() => {
                gateway::result::Result::RefDeprecated(solved.r#ref)
            }
            None => {
                return Err(BridgeError::Call(RemoteError::Protocol(
                    "the daemon solved the definition but returned no result".into(),
                )));
            }
        };
        results[i] = Some(result_ref);
    }
    drop(solves);
    let mut results: Vec<gateway::result::Result> = results.into_iter().flatten().collect();
    let result = if graph.platforms.is_empty() {
        let metadata = graph
            .image_config_json
            .map(|config| BTreeMap::from([("containerimage.config".to_string(), config)]))
            .unwrap_or_default();
        gateway::Result {
            result: results.pop(),
            metadata,
            ..Default::default()
        }
    } else {
        platforms_result(graph.platforms, results).map_err(BridgeError::Call)?
    };
    bridge
        .r#return(bridge_request(
            build_ref,
            ReturnRequest {
                result: Some(result),
                error: None,
            },
        )?)
        .await
        .map_err(|s| BridgeError::Call(RemoteError::grpc("LLBBridge.Return", s)))?;
    Ok(())
}

/// The result of a solve of several platforms, as BuildKit's Dockerfile frontend returns it:
/// a ref per platform keyed by its ID, `refs.platforms` listing them (what the exporters
/// read to write an index), and each one's image config under `containerimage.config/ID`.
fn platforms_result(
    platforms: Vec<super::PlatformGraph>,
    refs: Vec<gateway::result::Result>,
) -> Result<gateway::Result, RemoteError> {
    let mut listed = Vec::with_capacity(platforms.len());
    let mut metadata = BTreeMap::new();
    let mut by_id = BTreeMap::new();
    let mut deprecated = BTreeMap::new();
    for (p, r) in platforms.into_iter().zip(refs) {
        match r {
            gateway::result::Result::Ref(r) => {
                by_id.insert(p.id.clone(), r);
            }
            gateway::result::Result::RefDeprecated(id) => {
                deprecated.insert(p.id.clone(), id);
            }
            _ => {
                return Err(RemoteError::Protocol(format!(
                    "the daemon answered the {} graph with several results",
                    p.id
                )));
            }
        }
        // Go's encoding of exptypes.Platforms, whose fields have no JSON tags.
        listed.push(serde_json::json!({"ID": p.id, "Platform": p.platform}));
        metadata.insert(
            format!("containerimage.config/{}", p.id),
            p.image_config_json,
        );
    }
    metadata.insert(
        "refs.platforms".to_string(),
        serde_json::json!({ "Platforms": listed })
            .to_string()
            .into_bytes(),
    );
    let result = match (by_id.is_empty(), deprecated.is_empty()) {
        (false, true) => gateway::result::Result::Refs(gateway::RefMap { refs: by_id }),
        (true, false) => {
            gateway::result::Result::RefsDeprecated(gateway::RefMapDeprecated { refs: deprecated })
        }
        _ => {
            return Err(RemoteError::Protocol(
                "the daemon answered the platforms' graphs with refs of two kinds".into(),
            ));
        }
    };
    Ok(gateway::Result {
        result: Some(result),
        metadata,
        ..Default::default()
    })
}

/// Ends the build with an error: Control.Solve then returns, and the daemon forgets it.
async fn end_build(
    bridge: &mut LlbBridgeClient<GrpcChannel>,
    build_ref: &str,
    code: tonic::Code,
    message: String,
) -> Result<(), BridgeError> {
    let error = rpc::Status {
        code: code as i32,
        message,
        details: Vec::new(),
    };
    let request = ReturnRequest {
        result: None,
        error: Some(error),
    };
    // Best effort: if the daemon is gone, the caller's error says more than this one.
    let _ = bridge.r#return(bridge_request(build_ref, request)?).await;
    Ok(())
}

/// Refuses a definition that declares an LLB capability the daemon lacks, naming the first
/// such capability and the step that needs it.
fn check_caps(definition: &pb::Definition, daemon: &[apicaps::ApiCap]) -> Result<(), RemoteError> {
    let available: BTreeSet<&str> = daemon
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.as_str())
        .collect();
    for md in definition.metadata.values() {
        for (cap, &required) in &md.caps {
            if required && !available.contains(cap.as_str()) {
                let needed_by = md
                    .description
                    .get("llb.customname")
                    .or_else(|| md.description.get("com.docker.dockerfile.v1.command"))
                    .cloned();
                return Err(RemoteError::MissingCap {
                    cap: cap.clone(),
                    needed_by,
                });
            }
        }
    }
    Ok(())
}

/// The session's shared key: stable for a directory, so the daemon compares a new context
/// with what it kept from the last build of the same directory and asks only for changes.
fn shared_key(dir: Option<&std::path::Path>) -> String {
    let path = dir
        .and_then(|d| std::fs::canonicalize(d).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("bud:{path}").as_bytes());
    hex::encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition_needing(caps: &[&str]) -> pb::Definition {
        let md = pb::OpMetadata {
            caps: caps.iter().map(|c| (c.to_string(), true)).collect(),
            description: BTreeMap::from([("llb.customname".into(), "RUN x".into())]),
            ..Default::default()
        };
        pb::Definition {
            metadata: BTreeMap::from([("sha256:a".into(), md)]),
            ..Default::default()
        }
    }

    fn cap(id: &str, enabled: bool) -> apicaps::ApiCap {
        apicaps::ApiCap {
            id: id.into(),
            enabled,
            ..Default::default()
        }
    }

    #[test]
    fn caps_the_daemon_lacks_are_named() {
        let daemon = [
            cap("source.image", true),
            cap("exec.mount.tmpfs.size", false),
        ];
        assert!(check_caps(&definition_needing(&["source.image"]), &daemon).is_ok());
        let err = check_caps(&definition_needing(&["exec.mount.tmpfs.size"]), &daemon)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"exec.mount.tmpfs.size\""), "{err}");
        assert!(err.contains("needed by RUN x"), "{err}");
    }

    /// BuildKit's exporters read the platforms with Go's encoding/json (exptypes.Platforms,
    /// untagged fields) and each config under `containerimage.config/<ID>`.
    #[test]
    fn several_platforms_return_a_ref_each_with_their_platforms_listed() {
        let platform = |id: &str, arch: &str| super::super::PlatformGraph {
            id: id.to_owned(),
            platform: serde_json::json!({"os": "linux", "architecture": arch}),
            definition: pb::Definition::default(),
            image_config_json: format!("{{\"architecture\":\"{arch}\"}}").into_bytes(),
        };
        let solved = |id: &str| {
            gateway::result::Result::Ref(gateway::Ref {
                id: id.to_owned(),
                def: None,
            })
        };
        let result = platforms_result(
            vec![
                platform("linux/amd64", "amd64"),
                platform("linux/arm64", "arm64"),
            ],
            vec![solved("a"), solved("b")],
        )
        .unwrap();
        let Some(gateway::result::Result::Refs(refs)) = &result.result else {
            panic!("{result:?}");
        };
        assert_eq!(refs.refs["linux/amd64"].id, "a");
        assert_eq!(refs.refs["linux/arm64"].id, "b");
        let listed: serde_json::Value =
            serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
        assert_eq!(
            listed,
            serde_json::json!({"Platforms": [
                {"ID": "linux/amd64", "Platform": {"os": "linux", "architecture": "amd64"}},
                {"ID": "linux/arm64", "Platform": {"os": "linux", "architecture": "arm64"}},
            ]})
        );
        assert_eq!(
            result.metadata["containerimage.config/linux/arm64"],
            br#"{"architecture":"arm64"}"#
        );

        let mixed = platforms_result(
            vec![
                platform("linux/amd64", "amd64"),
                platform("linux/arm64", "arm64"),
            ],
            vec![
                solved("a"),
                gateway::result::Result::RefDeprecated("b".into()),
            ],
        );
        assert!(mixed.is_err());
    }

    #[test]
    fn shared_keys_depend_on_the_directory_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(shared_key(Some(a.path())), shared_key(Some(a.path())));
        assert_ne!(shared_key(Some(a.path())), shared_key(Some(b.path())));
    }
}
