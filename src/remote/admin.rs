//! The daemon's cache and workers: `bud du`, `bud prune` and `bud debug workers` with
//! `--addr`.

use std::time::Duration;

use bud_proto::control::control_client::ControlClient;
use bud_proto::control::{DiskUsageRequest, ListWorkersRequest, PruneRequest, UsageRecord};
use bud_proto::types::WorkerRecord;
use tokio_stream::StreamExt;

use super::transport::origin;
use super::{RemoteError, RemoteSolver};

/// What `prune` removes.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also records in use by nothing but still reachable (`--all`).
    pub all: bool,
    /// Keep records used more recently than this (`--keep-duration`).
    pub keep_duration: Option<Duration>,
    /// Keep this many bytes of cache (`--keep-storage`); 0 for no limit.
    pub keep_storage: u64,
    /// BuildKit filters (`--filter type=regular`).
    pub filters: Vec<String>,
}

impl RemoteSolver {
    fn control(&self) -> ControlClient<super::GrpcChannel> {
        ControlClient::with_origin(self.channel.clone(), origin())
            .max_decoding_message_size(64 << 20)
    }

    /// The daemon's build cache records.
    pub async fn disk_usage(&self, filters: Vec<String>) -> Result<Vec<UsageRecord>, RemoteError> {
        let resp = self
            .control()
            .disk_usage(DiskUsageRequest {
                filter: filters,
                ..Default::default()
            })
            .await
            .map_err(|s| RemoteError::grpc("Control.DiskUsage", s))?;
        Ok(resp.into_inner().record)
    }

    /// Removes build cache; returns the records removed.
    pub async fn prune(&self, opts: PruneOptions) -> Result<Vec<UsageRecord>, RemoteError> {
        let req = PruneRequest {
            filter: opts.filters,
            all: opts.all,
            keep_duration: opts
                .keep_duration
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0),
            // Field 4, `keepBytes` in the daemons bud targets.
            reserved_space: i64::try_from(opts.keep_storage).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut stream = self
            .control()
            .prune(req)
            .await
            .map_err(|s| RemoteError::grpc("Control.Prune", s))?
            .into_inner();
        let mut removed = Vec::new();
        while let Some(record) = stream.next().await {
            removed.push(record.map_err(|s| RemoteError::grpc("Control.Prune", s))?);
        }
        Ok(removed)
    }

    /// The daemon's workers (platforms, labels, GC policy).
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>, RemoteError> {
        let resp = self
            .control()
            .list_workers(ListWorkersRequest::default())
            .await
            .map_err(|s| RemoteError::grpc("Control.ListWorkers", s))?;
        Ok(resp.into_inner().record)
    }
}
