//! containerd.services.content.v1.Content: the content stores of the session, by the ID
//! BuildKit names in the `buildkit-attachable-store-id` header (`session/content`):
//! - `oci:NAME`: the OCI layout of `--build-context NAME=oci-layout://…`, which BuildKit's
//!   oci-layout source reads (buildx serves them the same way, from containerd's local
//!   store); read only.
//! - `local:DIR`: a local cache directory, as BuildKit's client names it: read by the
//!   daemon's local cache importer (`--cache-from type=local,src=DIR`), written by its
//!   exporter (`--cache-to type=local,dest=DIR`) through Write, Status and Abort
//!   (`ingest.rs`, where the writes are confined and checked).
//!
//! A blob is reached only inside its directory (`OciLayout::open_blob`), read through once
//! and checked against its digest before anything of it is served, then kept open for the
//! session, so what was checked is what is sent. A Read is bounded by the blob's checked
//! size and sent in chunks. The other methods (Update, List, Delete, ListStatuses) are
//! answered Unimplemented.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bud_proto::content::content_server::Content;
use bud_proto::content::{
    AbortRequest, Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse,
    StatusRequest, StatusResponse, WriteAction, WriteContentRequest, WriteContentResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::ingest::{CacheDir, HeldIngest, IngestError, WriteStatus};
use crate::content::Digest;
use crate::source::oci_layout::{LayoutError, OciLayout};

/// The methods that read, announced to the daemon.
pub(crate) const READ_METHODS: [&str; 2] = [
    "/containerd.services.content.v1.Content/Info",
    "/containerd.services.content.v1.Content/Read",
];

/// The methods that write, announced when a store is written.
pub(crate) const WRITE_METHODS: [&str; 3] = [
    "/containerd.services.content.v1.Content/Status",
    "/containerd.services.content.v1.Content/Write",
    "/containerd.services.content.v1.Content/Abort",
];

/// The gRPC header BuildKit names the store in (`session/content`'s `GRPCHeaderID`).
const STORE_HEADER: &str = "buildkit-attachable-store-id";
/// The prefix of the store IDs of `--build-context` OCI layouts (the source's `oci.store`
/// attribute follows it).
pub(crate) const LAYOUT_PREFIX: &str = "oci:";
/// The prefix of a local cache's store ID, the directory as the cache option names it.
pub(crate) const CACHE_PREFIX: &str = "local:";
/// The most a Read response carries (containerd's server sends 32 KiB; the daemon takes
/// messages of up to 4 MiB).
const CHUNK: usize = 256 << 10;

/// One content store of the session.
pub(crate) enum Store {
    /// An OCI layout of `--build-context`: read only.
    Layout(PathBuf),
    /// A local cache directory: read, and written when a `--cache-to` names it.
    Cache {
        dir: PathBuf,
        writer: Option<Arc<CacheDir>>,
    },
}

/// A blob checked against its digest, open for the rest of the session.
struct Blob {
    file: File,
    size: u64,
}

struct Opened {
    layout: OciLayout,
    writer: Option<Arc<CacheDir>>,
}

struct Stores {
    /// By store ID.
    stores: BTreeMap<String, Opened>,
    checked: Mutex<HashMap<(String, Digest), Arc<Blob>>>,
}

#[derive(Clone)]
pub(crate) struct ContentService(Arc<Stores>);

impl ContentService {
    /// The stores, by store ID (`oci:NAME`, `local:DIR`).
    pub(crate) fn new(stores: BTreeMap<String, Store>) -> Self {
        let stores = stores
            .into_iter()
            .map(|(id, store)| {
                let opened = match store {
                    Store::Layout(dir) => Opened {
                        layout: OciLayout::new(dir),
                        writer: None,
                    },
                    Store::Cache { dir, writer } => Opened {
                        layout: OciLayout::new(dir),
                        writer,
                    },
                };
                (id, opened)
            })
            .collect();
        Self(Arc::new(Stores {
            stores,
            checked: Mutex::default(),
        }))
    }
}

impl Stores {
    /// The store a request names.
    fn store<T>(&self, request: &Request<T>) -> Result<(String, &Opened), Status> {
        let header = request
            .metadata()
            .get(STORE_HEADER)
            .ok_or_else(|| Status::invalid_argument(format!("request lacks {STORE_HEADER}")))?;
        let id = header
            .to_str()
            .map_err(|_| Status::not_found(format!("bud serves no content store {header:?}")))?;
        let store = self.stores.get(id).ok_or_else(|| {
            Status::not_found(format!(
                "bud serves no content store {id:?} in this session"
            ))
        })?;
        Ok((id.to_owned(), store))
    }

    /// The store a request names, which the daemon may write.
    fn writer<T>(&self, request: &Request<T>) -> Result<Arc<CacheDir>, Status> {
        let (id, store) = self.store(request)?;
        store.writer.clone().ok_or_else(|| {
            Status::permission_denied(format!(
                "the content store {id:?} is read only: only a --cache-to directory is written"
            ))
        })
    }

    /// The blob `digest` of the store the request names, checked once.
    async fn blob<T>(&self, request: &Request<T>, digest: &str) -> Result<Arc<Blob>, Status> {
        let (id, store) = self.store(request)?;
        let digest = Digest::parse(digest)
            .map_err(|e| Status::invalid_argument(crate::error_chain::error_chain(&e)))?;
        self.checked_blob(id, &store.layout, digest).await
    }

    async fn checked_blob(
        &self,
        id: String,
        layout: &OciLayout,
        digest: Digest,
    ) -> Result<Arc<Blob>, Status> {
        let key = (id, digest);
        if let Some(blob) = self.lock().get(&key) {
            return Ok(blob.clone());
        }
        let opened = {
            let layout = layout.clone();
            let digest = key.1.clone();
            tokio::task::spawn_blocking(move || layout.open_verified(&digest))
                .await
                .map_err(|e| Status::internal(crate::error_chain::error_chain(&e)))?
        };
        let (file, size) = opened.map_err(|e| layout_status(&e))?;
        let blob = Arc::new(Blob { file, size });
        self.lock().insert(key, blob.clone());
        Ok(blob)
    }

    /// Whether the store `id` holds `digest` whole: a missing or damaged blob is written
    /// (again).
    async fn holds(&self, id: &str, digest: &Digest) -> Result<bool, Status> {
        let Some(store) = self.stores.get(id) else {
            return Ok(false);
        };
        match self
            .checked_blob(id.to_owned(), &store.layout, digest.clone())
            .await
        {
            Ok(_) => Ok(true),
            Err(status)
                if matches!(status.code(), tonic::Code::NotFound | tonic::Code::DataLoss) =>
            {
                Ok(false)
            }
            Err(status) => Err(status),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Digest), Arc<Blob>>> {
        self.checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The daemon turns the codes into containerd's errors (NotFound stays "not found"); the
/// message is what the user reads.
fn layout_status(e: &LayoutError) -> Status {
    let message = crate::error_chain::error_chain(e);
    match e {
        LayoutError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(message)
        }
        LayoutError::Escapes { .. } | LayoutError::NotAFile { .. } => {
            Status::permission_denied(message)
        }
        LayoutError::Corrupt { .. } => Status::data_loss(message),
        _ => Status::failed_precondition(message),
    }
}

/// The part of a blob of `size` bytes a Read asks for, as containerd's server reads it: a
/// negative offset is 0, an offset past the end an error, a size of 0 (or one past the end)
/// means to the end.
fn read_range(offset: i64, size: i64, blob_size: u64) -> Result<(u64, u64), Status> {
    let offset = offset.max(0) as u64;
    if offset > blob_size {
        return Err(Status::invalid_argument(format!(
            "read at {offset} past the blob's {blob_size} bytes"
        )));
    }
    let rest = blob_size - offset;
    let len = match u64::try_from(size) {
        Ok(n) if n > 0 => n.min(rest),
        _ => rest,
    };
    Ok((offset, len))
}

#[tonic::async_trait]
impl Content for ContentService {
    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let digest = request.get_ref().digest.clone();
        let blob = self.0.blob(&request, &digest).await?;
        let size = i64::try_from(blob.size)
            .map_err(|_| Status::out_of_range(format!("blob {digest} is too large")))?;
        Ok(Response::new(InfoResponse {
            info: Some(Info {
                digest,
                size,
                ..Default::default()
            }),
        }))
    }

    type ReadStream = ReceiverStream<Result<ReadContentResponse, Status>>;

    async fn read(
        &self,
        request: Request<ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let (digest, offset, size) = {
            let r = request.get_ref();
            (r.digest.clone(), r.offset, r.size)
        };
        let blob = self.0.blob(&request, &digest).await?;
        let (start, len) = read_range(offset, size, blob.size)?;
        let (tx, rx) = mpsc::channel(4);
        // Stops when the daemon goes away (the channel closes) or the range is sent.
        tokio::task::spawn_blocking(move || {
            let mut at = start;
            let end = start + len;
            while at < end {
                let want = usize::try_from(end - at).map_or(CHUNK, |n| n.min(CHUNK));
                let mut data = vec![0; want];
                let message = match blob.file.read_at(&mut data, at) {
                    // The file shrank since it was checked: what is left is not the blob.
                    Ok(0) => Err(Status::data_loss(format!(
                        "blob {digest} changed while it was read"
                    ))),
                    Ok(n) => {
                        data.truncate(n);
                        let offset = at as i64;
                        at += n as u64;
                        Ok(ReadContentResponse { offset, data })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(Status::internal(format!(
                        "reading blob {digest}: {}",
                        crate::error_chain::error_chain(&e)
                    ))),
                };
                let failed = message.is_err();
                if tx.blocking_send(message).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let dir = self.0.writer(&request)?;
        let status = dir
            .status(&request.get_ref().r#ref)
            .map_err(|e| ingest_status(&e))?;
        Ok(Response::new(StatusResponse {
            status: Some(bud_proto::content::Status {
                started_at: Some(status.started.into()),
                updated_at: Some(status.updated.into()),
                r#ref: status.reference,
                offset: signed(status.offset),
                total: signed(status.total),
                expected: status.expected.map(|d| d.to_string()).unwrap_or_default(),
            }),
        }))
    }

    type WriteStream = ReceiverStream<Result<WriteContentResponse, Status>>;

    async fn write(
        &self,
        request: Request<Streaming<WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let dir = self.0.writer(&request)?;
        let (id, _) = self.0.store(&request)?;
        let mut messages = request.into_inner();
        let first = messages
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("a write without a message"))?;
        if first.r#ref.is_empty() {
            return Err(Status::invalid_argument(
                "first message must have a reference",
            ));
        }
        let (tx, rx) = mpsc::channel(4);
        let write = Write {
            stores: self.0.clone(),
            id,
            dir,
        };
        tokio::spawn(async move {
            if let Err(status) = write.serve(first, messages, &tx).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<()>, Status> {
        let dir = self.0.writer(&request)?;
        dir.abort(&request.get_ref().r#ref)
            .map_err(|e| ingest_status(&e))?;
        Ok(Response::new(()))
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ingest_status(e: &IngestError) -> Status {
    Status::new(e.code(), crate::error_chain::error_chain(e))
}

/// One Write stream: one blob into a cache directory, as containerd's content server
/// takes it (the messages a STAT, WRITEs, a COMMIT; a blob the store holds already
/// answered AlreadyExists, which the daemon takes as done).
struct Write {
    stores: Arc<Stores>,
    id: String,
    dir: Arc<CacheDir>,
}

impl Write {
    async fn serve(
        &self,
        first: WriteContentRequest,
        mut messages: Streaming<WriteContentRequest>,
        tx: &mpsc::Sender<Result<WriteContentResponse, Status>>,
    ) -> Result<(), Status> {
        let held = {
            let (dir, reference, total) = (self.dir.clone(), first.r#ref.clone(), first.total);
            tokio::task::spawn_blocking(move || dir.begin(&reference, total))
                .await
                .map_err(|e| Status::internal(crate::error_chain::error_chain(&e)))?
                .map_err(|e| ingest_status(&e))?
        };
        let mut held = Some(held);
        let mut request = first;
        loop {
            let Some(mut ingest) = held.take() else {
                return Ok(());
            };
            let expected =
                match request.expected.as_str() {
                    "" => None,
                    text => Some(Digest::parse(text).map_err(|e| {
                        Status::invalid_argument(crate::error_chain::error_chain(&e))
                    })?),
                };
            if let Some(expected) = &expected {
                if self.stores.holds(&self.id, expected).await? {
                    ingest.discard();
                    return Err(Status::already_exists(format!(
                        "blob {expected} is in {} already",
                        self.dir.root().display()
                    )));
                }
            }
            ingest.declare(request.total, expected);
            let action = request.action();
            let (ingest, response) = match action {
                WriteAction::Stat => {
                    let status = ingest.status();
                    let mut response = response(action, &status);
                    response.started_at = Some(status.started.into());
                    response.updated_at = Some(status.updated.into());
                    response.total = signed(status.total);
                    (Some(ingest), response)
                }
                WriteAction::Write | WriteAction::Commit => {
                    let commit = action == WriteAction::Commit;
                    let data = std::mem::take(&mut request.data);
                    let offset = request.offset;
                    tokio::task::spawn_blocking(move || written(ingest, offset, &data, commit))
                        .await
                        .map_err(|e| Status::internal(crate::error_chain::error_chain(&e)))?
                        .map_err(|e| ingest_status(&e))?
                }
            };
            if tx.send(Ok(response)).await.is_err() {
                return Ok(());
            }
            // A COMMIT ends the stream.
            held = ingest;
            if held.is_none() {
                return Ok(());
            }
            request = match messages.message().await {
                Ok(Some(next)) => next,
                // The daemon ended the stream (or went away): the write is kept for another.
                Ok(None) | Err(_) => return Ok(()),
            };
        }
    }
}

fn response(action: WriteAction, status: &WriteStatus) -> WriteContentResponse {
    WriteContentResponse {
        action: action as i32,
        offset: signed(status.offset),
        digest: status.digest.to_string(),
        ..Default::default()
    }
}

/// `data` written at `offset`, then the blob committed if `commit`: the write still held
/// (none once committed) and the answer. Blocking.
fn written(
    mut ingest: HeldIngest,
    offset: i64,
    data: &[u8],
    commit: bool,
) -> Result<(Option<HeldIngest>, WriteContentResponse), IngestError> {
    ingest.write(offset, data)?;
    let status = ingest.status();
    let action = if commit {
        WriteAction::Commit
    } else {
        WriteAction::Write
    };
    let answer = response(action, &status);
    if commit {
        ingest.commit()?;
        return Ok((None, answer));
    }
    Ok((Some(ingest), answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// A layout with one blob (`hello`) and what else a test puts in it.
    fn layout() -> (tempfile::TempDir, PathBuf, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let digest = Digest::of(b"hello");
        std::fs::write(blobs.join(digest.hex()), b"hello").unwrap();
        (dir, root, digest)
    }

    fn service(root: &std::path::Path) -> ContentService {
        ContentService::new(BTreeMap::from([(
            "oci:ctx".to_owned(),
            Store::Layout(root.to_owned()),
        )]))
    }

    fn request<T>(store: &str, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut()
            .insert(STORE_HEADER, store.parse().unwrap());
        r
    }

    fn info(digest: &Digest) -> InfoRequest {
        InfoRequest {
            digest: digest.to_string(),
        }
    }

    async fn read_all(
        service: &ContentService,
        digest: &Digest,
        offset: i64,
        size: i64,
    ) -> Result<Vec<u8>, Status> {
        let req = request(
            "oci:ctx",
            ReadContentRequest {
                digest: digest.to_string(),
                offset,
                size,
            },
        );
        let mut stream = service.read(req).await?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            assert_eq!(chunk.offset, offset.max(0) + out.len() as i64);
            out.extend(chunk.data);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn blobs_are_served_by_store_and_range() {
        let (_dir, root, digest) = layout();
        let service = service(&root);
        let got = service
            .info(request("oci:ctx", info(&digest)))
            .await
            .unwrap();
        assert_eq!(got.into_inner().info.unwrap().size, 5);
        assert_eq!(read_all(&service, &digest, 0, 0).await.unwrap(), b"hello");
        assert_eq!(read_all(&service, &digest, 1, 3).await.unwrap(), b"ell");
        assert_eq!(read_all(&service, &digest, 3, 100).await.unwrap(), b"lo");
        assert_eq!(read_all(&service, &digest, 5, 0).await.unwrap(), b"");
        let err = read_all(&service, &digest, 6, 0).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);

        // The store is named as BuildKit names it, and only the layouts given are stores.
        for store in ["ctx", "oci:other"] {
            let err = service
                .info(request(store, info(&digest)))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::NotFound, "{store}: {err}");
        }
        let err = service.info(Request::new(info(&digest))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let err = service
            .info(request(
                "oci:ctx",
                InfoRequest {
                    digest: "sha256:../../../etc/passwd".into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn missing_corrupt_and_escaping_blobs_are_refused() {
        let (dir, root, _) = layout();
        let service = service(&root);
        let blobs = root.join("blobs/sha256");

        let missing = Digest::of(b"missing");
        let err = service
            .info(request("oci:ctx", info(&missing)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
        assert!(err.message().contains(missing.hex()), "{err}");

        let corrupt = Digest::of(b"corrupt");
        std::fs::write(blobs.join(corrupt.hex()), b"not what the name says").unwrap();
        let err = service
            .info(request("oci:ctx", info(&corrupt)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss, "{err}");
        assert!(err.message().contains("does not match its digest"), "{err}");
        let err = read_all(&service, &corrupt, 0, 0).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss, "{err}");

        // The right bytes outside the layout are not served through a symlink, absolute or
        // relative; a symlink within the layout is followed.
        let outside = Digest::of(b"outside");
        std::fs::write(dir.path().join("outside"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), blobs.join(outside.hex())).unwrap();
        let relative = Digest::of(b"relative");
        std::fs::write(dir.path().join("relative"), b"relative").unwrap();
        std::os::unix::fs::symlink("../../../relative", blobs.join(relative.hex())).unwrap();
        for escaping in [&outside, &relative] {
            let err = service
                .info(request("oci:ctx", info(escaping)))
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
            assert!(err.message().contains("leads out of the layout"), "{err}");
            let err = read_all(&service, escaping, 0, 0).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
        }
        let inside = Digest::of(b"inside");
        std::fs::write(root.join("inside"), b"inside").unwrap();
        std::os::unix::fs::symlink("../../inside", blobs.join(inside.hex())).unwrap();
        assert_eq!(read_all(&service, &inside, 0, 0).await.unwrap(), b"inside");

        // A FIFO would block a reader for ever: not a blob.
        let fifo = Digest::of(b"fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            blobs.join(fifo.hex()),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = service
            .info(request("oci:ctx", info(&fifo)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    }

    #[test]
    fn ranges_are_bounded_by_the_blob() {
        assert_eq!(read_range(-4, 0, 10).unwrap(), (0, 10));
        assert_eq!(read_range(2, 3, 10).unwrap(), (2, 3));
        assert_eq!(read_range(8, i64::MAX, 10).unwrap(), (8, 2));
        assert_eq!(read_range(10, 1, 10).unwrap(), (10, 0));
        assert!(read_range(11, 0, 10).is_err());
    }
}
