//! Files of a graph solved on the daemon (LLBBridge.Solve, then ReadFile), as BuildKit's
//! Dockerfile frontend reads the Dockerfile of a git or http build context.

use bud_proto::gateway::llb_bridge_client::LlbBridgeClient;
use bud_proto::gateway::{self, FileRange, ReadFileRequest};
use bud_proto::pb;

use super::RemoteError;
use super::solve::with_build_id;
use super::transport::GrpcChannel;

/// Why the daemon could not give the files of a graph.
#[derive(Debug, thiserror::Error)]
pub enum DaemonFilesError {
    /// The request could not be made, or the daemon refused it.
    #[error(transparent)]
    Call(#[from] RemoteError),
    /// The graph gave a result per platform where one was asked for.
    #[error("the daemon returned several results for one source")]
    SeveralResults,
    /// The daemon could not read one of the files asked for.
    #[error("reading {path} from the daemon's result")]
    Read {
        /// The file's path in the result.
        path: String,
        /// The daemon's error.
        #[source]
        source: RemoteError,
    },
}

/// Solves graphs within a build registered on the daemon and reads files of their results.
#[derive(Clone)]
pub struct DaemonFiles {
    pub(super) bridge: LlbBridgeClient<GrpcChannel>,
    pub(super) build_ref: String,
}

impl DaemonFiles {
    /// The contents of each of `paths` in the result of `definition` (`None` where the
    /// daemon finds no such file), at most `limit` bytes of each.
    pub async fn read(
        &self,
        definition: pb::Definition,
        paths: &[String],
        limit: Option<usize>,
    ) -> Result<Vec<Option<Vec<u8>>>, DaemonFilesError> {
        let mut bridge = self.bridge.clone();
        let request = gateway::SolveRequest {
            definition: Some(definition),
            allow_result_return: true,
            ..Default::default()
        };
        let solved = bridge
            .solve(with_build_id(&self.build_ref, request)?)
            .await
            .map_err(|s| RemoteError::grpc("LLBBridge.Solve", s))?
            .into_inner();
        let result_ref = match solved.result.and_then(|r| r.result) {
            Some(gateway::result::Result::RefDeprecated(id)) => id,
            Some(gateway::result::Result::Ref(r)) => r.id,
            Some(_) => return Err(DaemonFilesError::SeveralResults),
            None => solved.r#ref,
        };
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let request = ReadFileRequest {
                r#ref: result_ref.clone(),
                file_path: path.clone(),
                range: limit.map(|l| FileRange {
                    offset: 0,
                    length: i64::try_from(l).unwrap_or(i64::MAX),
                }),
                mount_index: 0,
            };
            let read = bridge
                .read_file(with_build_id(&self.build_ref, request)?)
                .await;
            out.push(match read {
                Ok(resp) => Some(resp.into_inner().data),
                Err(status) if is_missing(&status) => None,
                Err(status) => {
                    return Err(DaemonFilesError::Read {
                        path: path.clone(),
                        source: RemoteError::grpc("LLBBridge.ReadFile", status),
                    });
                }
            });
        }
        Ok(out)
    }
}

/// BuildKit reports a missing file with the error of the `open` that failed.
fn is_missing(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
        || status.message().contains("no such file or directory")
        || status.message().contains("not a directory")
        || status.message().contains("is a directory")
}
