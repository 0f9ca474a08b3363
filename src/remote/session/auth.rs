//! moby.filesync.v1.Auth: registry credentials from the Docker client configuration
//! (`~/.docker/config.json`, its `auths` and credential helpers), as `docker build` gives.

use bud_proto::filesync::auth_server::Auth;
use bud_proto::filesync::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use docker_credential::DockerCredential;
use tonic::{Request, Response, Status};

pub(crate) struct AuthService;

/// The key Docker Hub's credentials are stored under, whatever host the daemon pulls from.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn config_key(host: &str) -> &str {
    match host {
        "registry-1.docker.io" | "docker.io" | "index.docker.io" => DOCKER_HUB_KEY,
        _ => host,
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let key = config_key(&host).to_string();
        // Credential helpers are external programs: keep them off the async workers.
        let found = tokio::task::spawn_blocking(move || docker_credential::get_credential(&key))
            .await
            .map_err(|e| {
                Status::internal(format!(
                    "credential lookup failed: {}",
                    crate::error_chain::error_chain(&e)
                ))
            })?;
        let response = match found {
            Ok(DockerCredential::UsernamePassword(username, secret)) => {
                CredentialsResponse { username, secret }
            }
            // An identity token goes in the secret with no user name, as docker does.
            Ok(DockerCredential::IdentityToken(secret)) => CredentialsResponse {
                username: String::new(),
                secret,
            },
            // No configuration or no entry for this host: pull anonymously.
            Err(e) => {
                tracing::debug!(
                    "no credentials for {host}: {e}",
                    e = crate::error_chain::error_chain(&e)
                );
                CredentialsResponse::default()
            }
        };
        Ok(Response::new(response))
    }

    // The daemon falls back to Credentials when these are unimplemented.
    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented(
            "bud provides credentials, not tokens",
        ))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented(
            "bud provides credentials, not tokens",
        ))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented(
            "bud provides credentials, not tokens",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_hosts_share_one_key() {
        assert_eq!(config_key("registry-1.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("ghcr.io"), "ghcr.io");
    }
}
