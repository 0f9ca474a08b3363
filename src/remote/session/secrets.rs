//! moby.buildkit.secrets.v1.Secrets: the values of `--secret`, read when the daemon asks.

use std::collections::BTreeMap;

use bud_proto::secrets::secrets_server::Secrets;
use bud_proto::secrets::{GetSecretRequest, GetSecretResponse};
use tonic::{Request, Response, Status};

use crate::remote::{Secret, SecretSource};

pub(crate) struct SecretsService {
    sources: BTreeMap<String, SecretSource>,
}

impl SecretsService {
    pub(crate) fn new(specs: &[Secret]) -> Self {
        Self {
            sources: specs
                .iter()
                .map(|s| (s.id.clone(), s.source.clone()))
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        let data = match self.sources.get(&id) {
            // The daemon treats NotFound as "not provided" (a `required=false` mount is skipped).
            None => return Err(Status::not_found(format!("secret {id} not found"))),
            Some(SecretSource::Env(var)) => std::env::var_os(var)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "secret {id}: environment variable {var} is not set"
                    ))
                })?
                .into_encoded_bytes(),
            Some(SecretSource::File(path)) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path).map_err(|e| (path, e)))
                    .await
                    .map_err(|e| Status::internal(format!("secret {id}: {e}")))?
                    .map_err(|(path, e)| {
                        Status::not_found(format!("secret {id}: reading {}: {e}", path.display()))
                    })?
            }
        };
        Ok(Response::new(GetSecretResponse { data }))
    }
}
