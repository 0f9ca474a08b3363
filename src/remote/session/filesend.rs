//! moby.filesync.v1.FileSend/DiffCopy: the `local` and `tar` exporters send their output
//! back over the session.
//!
//! The proto declares BytesMessage, but BuildKit's local exporter sends fsutil Packets on
//! this stream (the daemon is fsutil's sender, bud the receiver) while the tar exporter
//! sends the archive as BytesMessages. The service is therefore written by hand, with the
//! codec chosen by the exporter bud asked for.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs::{File, FileTimes};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bud_proto::filesync::BytesMessage;
use bud_proto::fsutil::packet::PacketType;
use bud_proto::fsutil::{Packet, Stat};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{Grpc, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::walk;

/// Where the exporter's output goes.
#[derive(Debug, Clone)]
pub(crate) enum ExportTarget {
    /// Files written under this directory (created if missing, 0700 as BuildKit's client
    /// creates it), with `epoch` (SOURCE_DATE_EPOCH) as every entry's mtime where given:
    /// a daemon's BuildKit older than 0.11 sends the files' own.
    Dir {
        /// The directory.
        dest: PathBuf,
        /// Every entry's mtime, in seconds.
        epoch: Option<i64>,
    },
    /// One tar archive written to this file.
    Tar(PathBuf),
}

pub(crate) const METHOD: &str = "/moby.filesync.v1.FileSend/DiffCopy";

/// The header by which BuildKit 0.13 and later say which of the solve's exporters (by
/// index) a stream's files are from; older daemons have one exporter and send none.
const EXPORTER_ID: &str = "buildkit-attachable-exporter-id";

#[derive(Clone)]
pub(crate) struct FileSendService {
    targets: Vec<(usize, ExportTarget)>,
}

impl FileSendService {
    pub(crate) fn new(targets: Vec<(usize, ExportTarget)>) -> Self {
        Self { targets }
    }

    /// The target of the exporter the request names, or the only one.
    fn target_for(&self, headers: &http::HeaderMap) -> Result<Option<ExportTarget>, Status> {
        let Some(id) = headers.get(EXPORTER_ID) else {
            return Ok(self.targets.first().map(|(_, t)| t.clone()));
        };
        let id: usize = id
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Status::invalid_argument(format!("invalid {EXPORTER_ID} {id:?}")))?;
        Ok(self
            .targets
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, t)| t.clone()))
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower_service::Service<http::Request<B>> for FileSendService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let target = self.target_for(req.headers());
        Box::pin(async move {
            let target = match target {
                Ok(target) => target,
                Err(status) => return Ok(status.into_http()),
            };
            if req.uri().path() != METHOD {
                return Ok(
                    Status::unimplemented(format!("{} is not served", req.uri().path()))
                        .into_http(),
                );
            }
            Ok(match target {
                Some(ExportTarget::Dir { dest, epoch }) => {
                    Grpc::new(ProstCodec::<Packet, Packet>::default())
                        .streaming(ReceiveDir { dest, epoch }, req)
                        .await
                }
                Some(ExportTarget::Tar(dest)) => {
                    Grpc::new(ProstCodec::<BytesMessage, BytesMessage>::default())
                        .streaming(ReceiveTar { dest }, req)
                        .await
                }
                None => {
                    Status::failed_precondition("bud did not ask for exported files").into_http()
                }
            })
        })
    }
}

struct ReceiveTar {
    dest: PathBuf,
}

impl StreamingService<BytesMessage> for ReceiveTar {
    type Response = BytesMessage;
    type ResponseStream = ReceiverStream<Result<BytesMessage, Status>>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<BytesMessage>>) -> Self::Future {
        let dest = self.dest.clone();
        Box::pin(async move {
            let mut inbound = request.into_inner();
            let (tx, rx) = mpsc::channel(1);
            let (chunks_tx, mut chunks_rx) = mpsc::channel::<Vec<u8>>(16);
            let writer = tokio::task::spawn_blocking(move || -> Result<(), Status> {
                let io = |e: std::io::Error| Status::internal(format!("{}: {e}", dest.display()));
                // Not synced, as the embedded solver's outputs and buildx's are not: the
                // destination may be a pipe or /dev/null, where fsync fails.
                let mut file = File::create(&dest).map_err(io)?;
                while let Some(chunk) = chunks_rx.blocking_recv() {
                    file.write_all(&chunk).map_err(io)?;
                }
                file.flush().map_err(io)
            });
            tokio::spawn(async move {
                let result = async {
                    while let Some(msg) = inbound.next().await {
                        if chunks_tx.send(msg?.data).await.is_err() {
                            break;
                        }
                    }
                    drop(chunks_tx);
                    writer.await.map_err(|e| {
                        Status::internal(format!(
                            "writing the archive: {}",
                            crate::error_chain::error_chain(&e)
                        ))
                    })?
                }
                .await;
                // The response stays open until the archive is complete, then ends.
                if let Err(status) = result {
                    let _ = tx.send(Err(status)).await;
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
    }
}

struct ReceiveDir {
    dest: PathBuf,
    epoch: Option<i64>,
}

impl StreamingService<Packet> for ReceiveDir {
    type Response = Packet;
    type ResponseStream = ReceiverStream<Result<Packet, Status>>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<Packet>>) -> Self::Future {
        let dest = self.dest.clone();
        let epoch = self.epoch;
        Box::pin(async move {
            let mut inbound = request.into_inner();
            let (tx, rx) = mpsc::channel(128);
            let (packets_tx, packets_rx) = mpsc::channel::<Packet>(128);
            let worker = {
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || Receiver::new(dest, epoch, tx).run(packets_rx))
            };
            tokio::spawn(async move {
                let result = async {
                    while let Some(p) = inbound.next().await {
                        if packets_tx.send(p?).await.is_err() {
                            break;
                        }
                    }
                    drop(packets_tx);
                    worker.await.map_err(|e| {
                        Status::internal(format!(
                            "writing exported files: {}",
                            crate::error_chain::error_chain(&e)
                        ))
                    })?
                }
                .await;
                if let Err(status) = result {
                    let _ = tx.send(Err(status)).await;
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
    }
}

fn packet(kind: PacketType, id: u32) -> Packet {
    Packet {
        r#type: kind as i32,
        id,
        ..Default::default()
    }
}

/// fsutil's receiving side, writing into an output directory.
struct Receiver {
    dest: PathBuf,
    /// SOURCE_DATE_EPOCH in nanoseconds, the mtime of every entry when given.
    epoch_nanos: Option<i64>,
    tx: mpsc::Sender<Result<Packet, Status>>,
    /// Stats by ID, in the order the daemon sent them.
    stats: Vec<Stat>,
    /// Files whose DATA is still expected, by ID.
    open: std::collections::HashMap<u32, File>,
    symlinks: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, Stat)>,
    walk_done: bool,
    fin_sent: bool,
}

impl Receiver {
    fn new(dest: PathBuf, epoch: Option<i64>, tx: mpsc::Sender<Result<Packet, Status>>) -> Self {
        Self {
            dest,
            epoch_nanos: epoch.map(|e| e.saturating_mul(1_000_000_000)),
            tx,
            stats: Vec::new(),
            open: Default::default(),
            symlinks: HashSet::new(),
            dirs: Vec::new(),
            walk_done: false,
            fin_sent: false,
        }
    }

    fn run(mut self, mut packets: mpsc::Receiver<Packet>) -> Result<(), Status> {
        // As BuildKit's client: `MkdirAll(dest, 0700)`.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dest)
            .map_err(|e| self.io_err(&self.dest.clone(), e))?;
        while let Some(p) = packets.blocking_recv() {
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketStat) => match p.stat {
                    Some(stat) if !stat.path.is_empty() => self.entry(stat)?,
                    _ => {
                        self.walk_done = true;
                        self.maybe_finish()?;
                    }
                },
                Ok(PacketType::PacketData) => self.data(p.id, &p.data)?,
                Ok(PacketType::PacketFin) => break,
                Ok(PacketType::PacketErr) => {
                    return Err(Status::aborted(format!(
                        "error from the daemon: {}",
                        String::from_utf8_lossy(&p.data)
                    )));
                }
                _ => {}
            }
        }
        if !self.fin_sent {
            return Err(Status::aborted("the daemon ended the export early"));
        }
        Ok(())
    }

    fn io_err(&self, path: &Path, e: std::io::Error) -> Status {
        Status::internal(format!("{}: {e}", path.display()))
    }

    /// The destination of a relative path from the daemon, refusing any that would land
    /// outside the output directory.
    fn target(&self, rel: &str) -> Result<PathBuf, Status> {
        let rel_path = Path::new(rel);
        if !rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Status::invalid_argument(format!(
                "exported path {rel:?} is not a plain relative path"
            )));
        }
        let target = self.dest.join(rel_path);
        if target
            .ancestors()
            .skip(1)
            .any(|a| self.symlinks.contains(a))
        {
            return Err(Status::invalid_argument(format!(
                "exported path {rel:?} goes through a symlink"
            )));
        }
        Ok(target)
    }

    fn entry(&mut self, mut stat: Stat) -> Result<(), Status> {
        if let Some(nanos) = self.epoch_nanos {
            stat.mod_time = nanos;
        }
        let id = u32::try_from(self.stats.len()).unwrap_or(u32::MAX);
        let target = self.target(&stat.path)?;
        let io = |e| Status::internal(format!("{}: {e}", target.display()));
        if walk::is_dir(stat.mode) {
            match std::fs::create_dir(&target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && target.is_dir() => {}
                Err(e) => return Err(io(e)),
            }
            self.dirs.push((target.clone(), stat.clone()));
        } else {
            remove_existing(&target).map_err(io)?;
            if walk::is_symlink(stat.mode) {
                std::os::unix::fs::symlink(&stat.linkname, &target).map_err(io)?;
                // As fsutil's receiver: a symlink keeps the sent mtime too.
                set_symlink_mtime(&target, stat.mod_time).map_err(io)?;
                self.symlinks.insert(target.clone());
            } else if !stat.linkname.is_empty() {
                let first = self.target(&stat.linkname)?;
                std::fs::hard_link(&first, &target).map_err(io)?;
            } else if walk::is_regular(stat.mode) {
                let file = File::create(&target).map_err(io)?;
                if stat.size > 0 {
                    self.open.insert(id, file);
                    self.send(packet(PacketType::PacketReq, id))?;
                } else {
                    finish_file(&file, &stat).map_err(io)?;
                }
            } else {
                // Devices, fifos and sockets cannot be recreated without privileges.
                tracing::debug!("skipping special file {} in the export", stat.path);
            }
        }
        self.stats.push(stat);
        Ok(())
    }

    fn data(&mut self, id: u32, data: &[u8]) -> Result<(), Status> {
        let Some(stat) = self.stats.get(id as usize) else {
            return Err(Status::invalid_argument(format!(
                "data for unknown file id {id}"
            )));
        };
        let target = self.dest.join(&stat.path);
        let io = |e| Status::internal(format!("{}: {e}", target.display()));
        if data.is_empty() {
            if let Some(file) = self.open.remove(&id) {
                finish_file(&file, stat).map_err(io)?;
            }
            return self.maybe_finish();
        }
        match self.open.get_mut(&id) {
            Some(file) => file.write_all(data).map_err(io),
            None => Err(Status::invalid_argument(format!(
                "data for file id {id}, which was not requested"
            ))),
        }
    }

    /// Once every entry is in and every file complete: fix directory metadata (adding
    /// files changed it) and send the FIN.
    fn maybe_finish(&mut self) -> Result<(), Status> {
        if !self.walk_done || !self.open.is_empty() || self.fin_sent {
            return Ok(());
        }
        // Deepest first, so setting a child's time does not touch a finished parent.
        for (path, stat) in self.dirs.iter().rev() {
            let file = File::open(path).map_err(|e| self.io_err(path, e))?;
            finish_file(&file, stat).map_err(|e| self.io_err(path, e))?;
        }
        self.fin_sent = true;
        self.send(packet(PacketType::PacketFin, 0))
    }

    fn send(&self, p: Packet) -> Result<(), Status> {
        self.tx
            .blocking_send(Ok(p))
            .map_err(|_| Status::cancelled("the export stream closed"))
    }
}

fn remove_existing(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn finish_file(file: &File, stat: &Stat) -> std::io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(walk::unix_perm(stat.mode)))?;
    file.set_times(FileTimes::new().set_modified(system_time(stat.mod_time)))
}

/// An fsutil mtime (nanoseconds since 1970; none before it).
/// Nanoseconds since 1970 as a time, before 1970 too (a negative SOURCE_DATE_EPOCH).
fn system_time(nanos: i64) -> SystemTime {
    let offset = Duration::from_nanos(nanos.unsigned_abs());
    if nanos < 0 {
        SystemTime::UNIX_EPOCH - offset
    } else {
        SystemTime::UNIX_EPOCH + offset
    }
}

/// The mtime of the symlink itself, not of what it points to; its atime too, as fsutil
/// sets both.
fn set_symlink_mtime(path: &Path, nanos: i64) -> std::io::Result<()> {
    let time = rustix::fs::Timespec {
        tv_sec: nanos.div_euclid(1_000_000_000),
        tv_nsec: nanos.rem_euclid(1_000_000_000) as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}
