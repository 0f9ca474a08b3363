//! grpc.health.v1: the daemon checks the session every second and drops it after ten
//! seconds without an answer, so this answers from memory and touches nothing else.

use bud_proto::health::health_check_response::ServingStatus;
use bud_proto::health::health_server::Health;
use bud_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

pub(crate) struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Once<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("bud answers Check only"))
    }
}
