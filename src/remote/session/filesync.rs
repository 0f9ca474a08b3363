//! moby.filesync.v1.FileSync/DiffCopy: sends a local directory the way fsutil's sender does.
//!
//! bud walks the directory and sends one STAT per entry (ID = its position), then an empty
//! STAT. The daemon compares the stats with what it received in earlier builds and sends a
//! REQ for each file whose content it needs; bud answers with DATA chunks and an empty DATA.
//! A FIN from the daemon is answered with a FIN and ends the exchange.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bud_proto::filesync::file_sync_server::FileSync;
use bud_proto::fsutil::Packet;
use bud_proto::fsutil::packet::PacketType;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::walk::{self, Entry, WalkOptions};

/// fsutil's copy buffer: DATA packets carry at most this much.
const CHUNK: usize = 32 * 1024;

/// A directory the session offers under a name (`context`, `dockerfile`).
#[derive(Debug, Clone)]
pub struct SyncedDir {
    /// The directory on bud's side.
    pub path: PathBuf,
    /// Excludes from the client's `.dockerignore`: used unless the daemon sends its own
    /// with `override-excludes`.
    pub excludes: Vec<String>,
}

/// How much context content the daemon asked for; counts every DiffCopy of the session.
#[derive(Debug, Default)]
pub(crate) struct TransferCounters {
    files: AtomicU64,
    bytes: AtomicU64,
}

/// A snapshot of the session's `TransferCounters`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransferStats {
    /// Files whose content the daemon requested (REQ packets served).
    pub files: u64,
    /// Bytes of file content sent in DATA packets.
    pub bytes: u64,
}

impl TransferCounters {
    pub(crate) fn snapshot(&self) -> TransferStats {
        TransferStats {
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct FileSyncService {
    dirs: BTreeMap<String, SyncedDir>,
    counters: Arc<TransferCounters>,
}

impl FileSyncService {
    pub(crate) fn new(dirs: BTreeMap<String, SyncedDir>, counters: Arc<TransferCounters>) -> Self {
        Self { dirs, counters }
    }
}

/// Every value of a metadata key, URL-decoded when the daemon flagged it (`<key>-encoded`),
/// as BuildKit does for non-ASCII patterns.
fn metadata_values(md: &MetadataMap, key: &str) -> Vec<String> {
    let encoded = md
        .get(format!("{key}-encoded").as_str())
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| crate::cli::parse_go_bool(v) == Some(true));
    md.get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                percent_decode(v)
            } else {
                v.to_string()
            }
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `%XX` escapes and `+` for space.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let md = request.metadata();
        let name = metadata_values(md, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let Some(dir) = self.dirs.get(&name) else {
            return Err(Status::not_found(format!(
                "no access allowed to dir {name:?}"
            )));
        };
        let override_excludes = metadata_values(md, "override-excludes")
            .first()
            .is_some_and(|v| v == "true");
        let mut exclude_patterns = metadata_values(md, "exclude-patterns");
        if !dir.excludes.is_empty() && !override_excludes {
            exclude_patterns = dir.excludes.clone();
        }
        let opts = WalkOptions {
            include_patterns: metadata_values(md, "include-patterns"),
            exclude_patterns,
            follow_paths: metadata_values(md, "followpaths"),
        };
        tracing::debug!(dir = %name, ?opts, "sending a local directory");
        let root = dir.path.clone();
        let counters = self.counters.clone();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(128);
        tokio::spawn(async move {
            if let Err(status) = send_dir(root, opts, inbound, tx.clone(), counters).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type TarStreamStream = ReceiverStream<Result<Packet, Status>>;

    async fn tar_stream(
        &self,
        _: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("bud sends contexts with DiffCopy"))
    }
}

type Outbound = mpsc::Sender<Result<Packet, Status>>;

async fn send_dir(
    root: PathBuf,
    opts: WalkOptions,
    mut inbound: Streaming<Packet>,
    tx: Outbound,
    counters: Arc<TransferCounters>,
) -> Result<(), Status> {
    let walk_root = root.clone();
    let walked = tokio::task::spawn_blocking(move || walk::walk(&walk_root, &opts))
        .await
        .map_err(|e| Status::internal(format!("walking {}: {e}", root.display())))?;
    let entries = match walked {
        Ok(entries) => Arc::new(entries),
        Err(e) => {
            // fsutil reports walk errors in-band so the daemon shows the message.
            let message = crate::error_chain::error_chain(&e);
            let mut err = packet(PacketType::PacketErr);
            err.data = message.clone().into_bytes();
            let _ = tx.send(Ok(err)).await;
            return Err(Status::failed_precondition(message));
        }
    };

    // File content is read on one blocking thread, in REQ order; stats go out meanwhile.
    let (req_tx, req_rx) = std::sync::mpsc::channel::<u32>();
    let reader = {
        let entries = entries.clone();
        let tx = tx.clone();
        let counters = counters.clone();
        tokio::task::spawn_blocking(move || serve_requests(&entries, req_rx, &tx, &counters))
    };

    let stats = {
        let entries = entries.clone();
        let tx = tx.clone();
        async move {
            for (id, entry) in entries.iter().enumerate() {
                let mut p = packet(PacketType::PacketStat);
                p.stat = Some(entry.stat.clone());
                p.id = u32::try_from(id).unwrap_or(u32::MAX);
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Ok(packet(PacketType::PacketStat))).await;
        }
    };
    let requests = async {
        let mut req_tx = Some(req_tx);
        while let Some(p) = inbound.next().await {
            let p = p?;
            match PacketType::try_from(p.r#type) {
                Ok(PacketType::PacketReq) => {
                    if p.id as usize >= entries.len() {
                        return Err(Status::invalid_argument(format!(
                            "request for unknown file id {}",
                            p.id
                        )));
                    }
                    if let Some(q) = &req_tx {
                        // The reader only stops early after the stream is gone.
                        let _ = q.send(p.id);
                    }
                }
                Ok(PacketType::PacketFin) => {
                    // Everything requested must be on its way before the FIN.
                    drop(req_tx.take());
                    return Ok(true);
                }
                Ok(PacketType::PacketErr) => {
                    return Err(Status::aborted(format!(
                        "error from the daemon: {}",
                        String::from_utf8_lossy(&p.data)
                    )));
                }
                _ => {}
            }
        }
        Ok(false)
    };
    let ((), fin) = tokio::join!(stats, requests);
    let fin = fin?;
    reader
        .await
        .map_err(|e| Status::internal(format!("reading files: {e}")))??;
    if fin {
        let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
    }
    Ok(())
}

fn serve_requests(
    entries: &[Entry],
    requests: std::sync::mpsc::Receiver<u32>,
    tx: &Outbound,
    counters: &TransferCounters,
) -> Result<(), Status> {
    for id in requests {
        let Some(entry) = entries.get(id as usize) else {
            continue;
        };
        counters.files.fetch_add(1, Ordering::Relaxed);
        if walk::is_regular(entry.stat.mode) {
            let mut file = std::fs::File::open(&entry.path).map_err(|e| {
                Status::failed_precondition(format!("{}: {e}", entry.path.display()))
            })?;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = file.read(&mut buf).map_err(|e| {
                    Status::failed_precondition(format!("{}: {e}", entry.path.display()))
                })?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
                let mut p = packet(PacketType::PacketData);
                p.id = id;
                p.data = buf;
                if tx.blocking_send(Ok(p)).is_err() {
                    return Ok(());
                }
            }
        }
        let mut end = packet(PacketType::PacketData);
        end.id = id;
        if tx.blocking_send(Ok(end)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_flagged_metadata() {
        assert_eq!(percent_decode("caf%C3%A9+x"), "café x");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
