//! OpenTelemetry traces of a build, sent to `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) as buildx does: a root span for the build and one
//! child span per step, named as the progress shows it, with the vertex digest, whether it
//! came from the cache, and its error.
//!
//! It wraps the renderer the user chose and forwards every event to it. Spans are made from
//! the progress events' own times and sent once, when the build finishes (successfully or
//! not), from a thread with its own runtime: the export can neither fail the build nor hold
//! it up longer than the OTLP timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default).
//! http/protobuf goes through bud's reqwest, so https collectors work (their CA from
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` if the system does not trust it); gRPC has no TLS here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};

use super::{Event, Renderer};

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
const TRACES_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to send traces, from the standard OTLP environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The URL spans are sent to: for HTTP, the generic endpoint gets `/v1/traces`
    /// appended, the traces endpoint is used as it is.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: gRPC (the default) or http/protobuf.
    pub protocol: Protocol,
    /// The spans' `service.name` (`OTEL_SERVICE_NAME`, else `bud`).
    pub service_name: String,
    /// How long the export may take before it is given up with a warning.
    pub timeout: Duration,
    /// A PEM file of CA certificates an https collector is verified with, besides the
    /// system's.
    pub certificate: Option<std::path::PathBuf>,
}

impl OtlpConfig {
    /// The configuration `lookup` (the environment) gives, `None` when no endpoint is set.
    /// An unsupported protocol is reported and exports nothing.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let traces_endpoint = var(TRACES_ENDPOINT);
        let generic_endpoint = var(ENDPOINT);
        if traces_endpoint.is_none() && generic_endpoint.is_none() {
            return None;
        }
        let protocol = match var(TRACES_PROTOCOL).or_else(|| var(PROTOCOL)).as_deref() {
            // buildx's default, as BuildKit's.
            None | Some("grpc") => Protocol::Grpc,
            Some("http/protobuf") => Protocol::HttpBinary,
            Some(other) => {
                crate::report!(
                    "warning: {PROTOCOL}={other} is not supported (grpc or http/protobuf): \
                     not exporting traces"
                );
                return None;
            }
        };
        let timeout = var(TRACES_TIMEOUT)
            .or_else(|| var(TIMEOUT))
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let endpoint = match (traces_endpoint, generic_endpoint) {
            (Some(url), _) => url,
            (None, Some(url)) if protocol == Protocol::HttpBinary => {
                format!("{}/v1/traces", url.trim_end_matches('/'))
            }
            (None, url) => url.unwrap_or_default(),
        };
        if endpoint.starts_with("https://") && protocol == Protocol::Grpc {
            // The gRPC transport here has no TLS: say so now rather than after a timeout.
            crate::report!(
                "warning: {endpoint}: OTLP over gRPC with TLS is not supported yet (set \
                 {PROTOCOL}=http/protobuf): not exporting traces"
            );
            return None;
        }
        Some(Self {
            endpoint,
            protocol,
            service_name: var(SERVICE_NAME).unwrap_or_else(|| "bud".into()),
            timeout,
            certificate: var(TRACES_CERTIFICATE)
                .or_else(|| var(CERTIFICATE))
                .map(Into::into),
        })
    }
}

/// Wraps `inner` in an [`OtelRenderer`] when the environment asks for traces.
pub(super) fn wrap_from_env(inner: Box<dyn Renderer>) -> Box<dyn Renderer> {
    match OtlpConfig::from_env(|name| std::env::var(name).ok()) {
        Some(config) => Box::new(OtelRenderer::new(inner, config)),
        None => inner,
    }
}

/// One step as a span will show it.
#[derive(Debug, Clone)]
struct Step {
    vertex: String,
    name: String,
    start: SystemTime,
    end: SystemTime,
    cached: bool,
    error: Option<String>,
}

/// Passes every event on to the renderer it wraps, remembering each step's span, and sends
/// the spans when the build finishes.
pub struct OtelRenderer {
    inner: Box<dyn Renderer>,
    config: OtlpConfig,
    build_start: SystemTime,
    running: HashMap<String, (String, SystemTime)>,
    steps: Vec<Step>,
}

impl OtelRenderer {
    /// Wraps `inner`; the build's root span starts now.
    pub fn new(inner: Box<dyn Renderer>, config: OtlpConfig) -> Self {
        Self {
            inner,
            config,
            build_start: SystemTime::now(),
            running: HashMap::new(),
            steps: Vec::new(),
        }
    }
}

impl Renderer for OtelRenderer {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { vertex, name, at } => {
                self.running.insert(vertex.clone(), (name.clone(), *at));
            }
            Event::Cached { vertex, name, at } => self.steps.push(Step {
                vertex: vertex.clone(),
                name: name.clone(),
                start: *at,
                end: *at,
                cached: true,
                error: None,
            }),
            Event::Completed { vertex, at, error } => {
                if let Some((name, start)) = self.running.remove(vertex) {
                    self.steps.push(Step {
                        vertex: vertex.clone(),
                        name,
                        start,
                        end: *at,
                        cached: false,
                        error: error.clone(),
                    });
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }

    fn finish(&mut self, ok: bool) {
        self.inner.finish(ok);
        let end = SystemTime::now();
        // Steps cut short (a failed or interrupted build) end with it.
        for (vertex, (name, start)) in self.running.drain() {
            self.steps.push(Step {
                vertex,
                name,
                start,
                end,
                cached: false,
                error: Some("canceled".into()),
            });
        }
        let spans = spans(
            &self.config.service_name,
            self.build_start,
            end,
            ok,
            &self.steps,
        );
        if let Err(e) = export(&self.config, spans.0, spans.1) {
            crate::report!("warning: exporting traces to {}: {e}", self.config.endpoint);
        }
    }
}

/// Keeps every ended span, to be exported in one request.
#[derive(Debug, Default, Clone)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Collected {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// The build's spans: the root, then one per step under it.
fn spans(
    service_name: &str,
    start: SystemTime,
    end: SystemTime,
    ok: bool,
    steps: &[Step],
) -> (Resource, Vec<SpanData>) {
    let resource = Resource::builder_empty()
        .with_service_name(service_name.to_string())
        .build();
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(collected.clone())
        .with_resource(resource.clone())
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "bud");
    let mut root = tracer
        .span_builder("build")
        .with_kind(SpanKind::Internal)
        .with_start_time(start)
        .start(&tracer);
    if !ok {
        root.set_status(Status::error("build failed"));
    }
    let parent = Context::new().with_remote_span_context(root.span_context().clone());
    for step in steps {
        let mut span = tracer
            .span_builder(step.name.clone())
            .with_start_time(step.start)
            .with_attributes([
                KeyValue::new("vertex", step.vertex.clone()),
                KeyValue::new("cached", step.cached),
            ])
            .start_with_context(&tracer, &parent);
        if let Some(e) = &step.error {
            span.set_status(Status::error(e.clone()));
        }
        span.end_with_timestamp(step.end);
    }
    root.end_with_timestamp(end);
    drop(provider);
    let spans = std::mem::take(&mut *collected.0.lock().unwrap_or_else(|p| p.into_inner()));
    (resource, spans)
}

/// Sends `spans` and waits at most the configured timeout (and a little for the thread).
fn export(config: &OtlpConfig, resource: Resource, spans: Vec<SpanData>) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    let timeout = config.timeout;
    // A thread of its own: the caller may be on the build's runtime, which must not block
    // on its own I/O, and a stuck exporter is simply left behind when the deadline passes.
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(send(&config, resource, spans)));
            let _ = tx.send(result);
        })
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(timeout + Duration::from_secs(1))
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// The HTTP client of http/protobuf exports: the reqwest (and rustls) bud already uses for
/// `ADD URL`, so that https collectors work, with `OTEL_EXPORTER_OTLP_CERTIFICATE` trusted.
fn http_client(config: &OtlpConfig) -> Result<OtlpHttpClient, String> {
    let mut builder = reqwest::Client::builder().timeout(config.timeout);
    if let Some(path) = &config.certificate {
        let pem = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map(OtlpHttpClient)
        .map_err(|e| e.to_string())
}

#[derive(Debug)]
struct OtlpHttpClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut answer = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        Ok(answer.body(response.bytes().await?)?)
    }
}

async fn send(config: &OtlpConfig, resource: Resource, spans: Vec<SpanData>) -> Result<(), String> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let built = match config.protocol {
        Protocol::HttpBinary => builder
            .with_http()
            .with_http_client(http_client(config)?)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&config.endpoint)
            .with_timeout(config.timeout)
            .build(),
        _ => builder
            .with_tonic()
            .with_endpoint(&config.endpoint)
            .with_timeout(config.timeout)
            .build(),
    };
    let mut exporter = built.map_err(|e| e.to_string())?;
    exporter.set_resource(&resource);
    let result = tokio::time::timeout(config.timeout, exporter.export(spans)).await;
    let _ = exporter.shutdown();
    match result {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn configuration_from_the_environment() {
        assert_eq!(OtlpConfig::from_env(env(&[])), None);
        let c = OtlpConfig::from_env(env(&[(ENDPOINT, "http://127.0.0.1:4317")])).unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4317");
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.service_name, "bud");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        let c = OtlpConfig::from_env(env(&[
            (TRACES_ENDPOINT, "http://127.0.0.1:4318/v1/traces"),
            (PROTOCOL, "http/protobuf"),
            (SERVICE_NAME, "ci"),
            (TIMEOUT, "500"),
        ]))
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.protocol, Protocol::HttpBinary);
        assert_eq!(c.service_name, "ci");
        assert_eq!(c.timeout, Duration::from_millis(500));
        let c = OtlpConfig::from_env(env(&[
            (ENDPOINT, "http://127.0.0.1:4318/"),
            (PROTOCOL, "http/protobuf"),
        ]))
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(
            OtlpConfig::from_env(env(&[(ENDPOINT, "x"), (PROTOCOL, "http/json")])),
            None
        );
        assert_eq!(
            OtlpConfig::from_env(env(&[(ENDPOINT, "https://collector.example:4317")])),
            None,
            "gRPC has no TLS here"
        );
        let c = OtlpConfig::from_env(env(&[
            (ENDPOINT, "https://collector.example:4318"),
            (PROTOCOL, "http/protobuf"),
            (CERTIFICATE, "/etc/ca.pem"),
        ]))
        .unwrap();
        assert_eq!(c.endpoint, "https://collector.example:4318/v1/traces");
        assert_eq!(c.certificate, Some("/etc/ca.pem".into()));
    }

    #[test]
    fn steps_are_children_of_the_build() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let steps = [
            Step {
                vertex: "sha256:a".into(),
                name: "[1/2] FROM base".into(),
                start: t0,
                end: t0,
                cached: true,
                error: None,
            },
            Step {
                vertex: "sha256:b".into(),
                name: "[2/2] RUN false".into(),
                start: t0 + Duration::from_secs(1),
                end: t0 + Duration::from_secs(2),
                cached: false,
                error: Some("exit code 1".into()),
            },
        ];
        let (_, spans) = spans("bud", t0, t0 + Duration::from_secs(3), false, &steps);
        let root = spans.iter().find(|s| s.name == "build").unwrap();
        assert!(matches!(root.status, Status::Error { .. }));
        let run = spans.iter().find(|s| s.name == "[2/2] RUN false").unwrap();
        assert_eq!(run.parent_span_id, root.span_context.span_id());
        assert_eq!(run.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(run.start_time, t0 + Duration::from_secs(1));
        assert!(
            matches!(&run.status, Status::Error { description } if description == "exit code 1")
        );
        let from = spans.iter().find(|s| s.name == "[1/2] FROM base").unwrap();
        assert!(from.attributes.contains(&KeyValue::new("cached", true)));
        assert_eq!(spans.len(), 3);
    }
}
