//! The session: gRPC services bud serves to the daemon during a build (the daemon is the
//! client). It carries the build context, registry credentials, secrets, SSH agents, the
//! OCI layouts of `--build-context` and the directories of local caches (as content
//! stores) and, for the `local` and `tar` exporters, the build's output.

mod auth;
mod content;
mod filesend;
mod filesync;
mod health;
mod ingest;
mod secrets;
mod ssh;
mod tunnel;
pub(crate) mod walk;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bud_proto::content::content_server::ContentServer;
use bud_proto::filesync::auth_server::AuthServer;
use bud_proto::filesync::file_sync_server::FileSyncServer;
use bud_proto::health::health_server::HealthServer;
use bud_proto::secrets::secrets_server::SecretsServer;
use bud_proto::sshforward::ssh_server::SshServer;
use http::{Request, Response};
use hyper::body::Incoming;
use tower_service::Service;

pub(crate) use content::Store as ContentStore;
pub(crate) use filesend::ExportTarget;
pub(crate) use filesync::TransferCounters;
pub use filesync::{SyncedDir, TransferStats};
pub(crate) use ingest::CacheDir;
pub(crate) use tunnel::open_tunnel;

use super::Secret;

/// The methods bud serves, announced to the daemon (which calls only announced ones).
fn methods(exports: bool, ssh: bool, stores: Stores) -> Vec<&'static str> {
    let mut m = vec![
        "/grpc.health.v1.Health/Check",
        "/moby.filesync.v1.FileSync/DiffCopy",
        "/moby.filesync.v1.Auth/Credentials",
        "/moby.filesync.v1.Auth/FetchToken",
        "/moby.filesync.v1.Auth/GetTokenAuthority",
        "/moby.filesync.v1.Auth/VerifyTokenAuthority",
        "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    ];
    if exports {
        m.push(filesend::METHOD);
    }
    if ssh {
        m.push("/moby.sshforward.v1.SSH/CheckAgent");
        m.push("/moby.sshforward.v1.SSH/ForwardAgent");
    }
    if stores != Stores::None {
        m.extend(content::READ_METHODS);
    }
    if stores == Stores::Written {
        m.extend(content::WRITE_METHODS);
    }
    m
}

/// Which content stores a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stores {
    None,
    Read,
    /// A local cache the daemon writes among them.
    Written,
}

/// Identity and content of one session.
pub(crate) struct Session {
    pub id: String,
    pub name: String,
    /// Stable for a context directory, so the daemon reuses what it received last time.
    pub shared_key: String,
    router: Router,
    exports: bool,
    ssh: bool,
    stores: Stores,
}

/// What a session offers the daemon.
pub(crate) struct Offer<'a> {
    pub dirs: BTreeMap<String, SyncedDir>,
    pub secrets: &'a [Secret],
    pub ssh_agents: BTreeMap<String, PathBuf>,
    /// OCI layout directories, served as content stores by ID (the `oci.store` attribute of
    /// the `oci-layout://` sources reading them).
    pub oci_layouts: BTreeMap<String, PathBuf>,
    /// Local cache directories (`--cache-from`/`--cache-to type=local`), served as content
    /// stores by the directory as the cache option names it.
    pub local_caches: BTreeMap<String, ContentStore>,
    /// Where each exporter that sends files back writes, by its index in the solve's
    /// exporters.
    pub exports: Vec<(usize, ExportTarget)>,
}

impl Session {
    pub(crate) fn new(
        id: String,
        name: String,
        shared_key: String,
        offer: Offer<'_>,
        counters: Arc<TransferCounters>,
    ) -> Self {
        let Offer {
            dirs,
            secrets,
            ssh_agents,
            oci_layouts,
            local_caches,
            exports: targets,
        } = offer;
        let exports = !targets.is_empty();
        let ssh = !ssh_agents.is_empty();
        let written = local_caches.values().any(|s| {
            matches!(
                s,
                ContentStore::Cache {
                    writer: Some(_),
                    ..
                }
            )
        });
        let stores = match (oci_layouts.is_empty() && local_caches.is_empty(), written) {
            (_, true) => Stores::Written,
            (true, false) => Stores::None,
            (false, false) => Stores::Read,
        };
        let stores_by_id = oci_layouts
            .into_iter()
            .map(|(name, dir)| {
                (
                    format!("{}{name}", content::LAYOUT_PREFIX),
                    ContentStore::Layout(dir),
                )
            })
            .chain(
                local_caches
                    .into_iter()
                    .map(|(dir, store)| (format!("{}{dir}", content::CACHE_PREFIX), store)),
            )
            .collect();
        let router = Router {
            health: HealthServer::new(health::HealthService),
            filesync: FileSyncServer::new(filesync::FileSyncService::new(dirs, counters)),
            auth: AuthServer::new(auth::AuthService),
            secrets: SecretsServer::new(secrets::SecretsService::new(secrets)),
            ssh: SshServer::new(ssh::SshService::new(ssh_agents)),
            filesend: filesend::FileSendService::new(targets),
            content: ContentServer::new(content::ContentService::new(stores_by_id)),
        };
        Self {
            id,
            name,
            shared_key,
            router,
            exports,
            ssh,
            stores,
        }
    }

    /// The session headers of dockerd's `/session` (canonical names, one method a line).
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("X-Docker-Expose-Session-Uuid", self.id.clone()),
            ("X-Docker-Expose-Session-Name", self.name.clone()),
            ("X-Docker-Expose-Session-Sharedkey", self.shared_key.clone()),
        ];
        for m in methods(self.exports, self.ssh, self.stores) {
            h.push(("X-Docker-Expose-Session-Grpc-Method", m.to_string()));
        }
        h
    }

    pub(crate) fn router(&self) -> Router {
        self.router.clone()
    }
}

/// Dispatches the daemon's calls to the services by their gRPC service name.
#[derive(Clone)]
pub(crate) struct Router {
    health: HealthServer<health::HealthService>,
    filesync: FileSyncServer<filesync::FileSyncService>,
    auth: AuthServer<auth::AuthService>,
    secrets: SecretsServer<secrets::SecretsService>,
    ssh: SshServer<ssh::SshService>,
    filesend: filesend::FileSendService,
    content: ContentServer<content::ContentService>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<Incoming>> for Router {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        match service.as_str() {
            "grpc.health.v1.Health" => Box::pin(self.health.call(req)),
            "moby.filesync.v1.FileSync" => Box::pin(self.filesync.call(req)),
            "moby.filesync.v1.Auth" => Box::pin(self.auth.call(req)),
            "moby.buildkit.secrets.v1.Secrets" => Box::pin(self.secrets.call(req)),
            "moby.sshforward.v1.SSH" => Box::pin(self.ssh.call(req)),
            "moby.filesync.v1.FileSend" => Box::pin(self.filesend.call(req)),
            "containerd.services.content.v1.Content" => Box::pin(self.content.call(req)),
            _ => {
                let status = tonic::Status::unimplemented(format!(
                    "bud does not serve {}",
                    req.uri().path()
                ));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
