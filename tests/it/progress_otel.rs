//! OpenTelemetry export: an OTLP receiver in the test (gRPC or HTTP/protobuf, on loopback)
//! gets a root span for the build and one span per step, named as the Dockerfile's steps,
//! also from a failed build; an endpoint nobody answers on does not fail the build.

use crate::support;

use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_otlp::Protocol;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};
use prost::Message as _;

use bud::progress::{Event, OtelRenderer, OtlpConfig, QuietRenderer, Renderer};

/// What the receiver got: every request, decoded.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        for req in self.0.lock().unwrap().iter() {
            for rs in &req.resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        Value::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }
}

/// An OTLP receiver on 127.0.0.1: HTTP/1.1 `POST /v1/traces` for http/protobuf, HTTP/2
/// `TraceService/Export` for gRPC. Returns its base URL.
async fn receiver(protocol: Protocol, received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let received = received.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = received.clone();
                    async move { Ok::<_, Infallible>(answer(protocol, req, &received).await) }
                });
                let io = TokioIo::new(stream);
                let _ = match protocol {
                    Protocol::Grpc => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                    _ => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    }
                };
            });
        }
    });
    format!("http://{addr}")
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(protocol: Protocol, req: Request<Incoming>, received: &Received) -> Response<Body> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let reply = ExportTraceServiceResponse::default().encode_to_vec();
    match protocol {
        Protocol::Grpc => {
            assert_eq!(
                path,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            );
            // A gRPC message: a compression flag, a 4-byte length, the message.
            assert_eq!(body[0], 0, "compressed");
            let request = ExportTraceServiceRequest::decode(&body[5..]).unwrap();
            received.0.lock().unwrap().push(request);
            let mut framed = vec![0u8];
            framed.extend_from_slice(&(reply.len() as u32).to_be_bytes());
            framed.extend_from_slice(&reply);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let frames = futures_util::stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from(framed))),
                Ok(Frame::trailers(trailers)),
            ]);
            Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(frames).boxed())
                .unwrap()
        }
        _ => {
            assert_eq!(path, "/v1/traces");
            let request = ExportTraceServiceRequest::decode(body).unwrap();
            received.0.lock().unwrap().push(request);
            Response::builder()
                .header("content-type", "application/x-protobuf")
                .body(Full::new(Bytes::from(reply)).boxed())
                .unwrap()
        }
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn config(endpoint: String, protocol: Protocol) -> OtlpConfig {
    OtlpConfig {
        endpoint,
        protocol,
        service_name: "bud-test".into(),
        timeout: Duration::from_secs(10),
        certificate: None,
    }
}

/// The renderer fed a build's events, finishing as a build does.
fn render(config: OtlpConfig, ok: bool) {
    let t0 = SystemTime::now();
    let mut r = OtelRenderer::new(Box::new(QuietRenderer), config);
    for event in [
        Event::Cached {
            vertex: "sha256:aa".into(),
            name: "[1/2] FROM docker.io/library/alpine".into(),
            at: t0,
        },
        Event::Started {
            vertex: "sha256:bb".into(),
            name: "[2/2] RUN make".into(),
            at: t0,
        },
        Event::Completed {
            vertex: "sha256:bb".into(),
            at: t0 + Duration::from_millis(5),
            error: (!ok).then(|| "exit code: 2".to_string()),
        },
    ] {
        r.event(&event);
    }
    r.finish(ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_renderer_exports_a_build_over_both_protocols() {
    for protocol in [Protocol::HttpBinary, Protocol::Grpc] {
        let received = Received::default();
        let base = receiver(protocol, received.clone()).await;
        let endpoint = match protocol {
            Protocol::Grpc => base,
            _ => format!("{base}/v1/traces"),
        };
        let config = config(endpoint, protocol);
        tokio::task::spawn_blocking(move || render(config, false))
            .await
            .unwrap();
        let spans = received.spans();
        assert_eq!(spans.len(), 3, "{protocol:?}: {spans:?}");
        assert!(spans.iter().all(|(service, _)| service == "bud-test"));
        let root = &spans.iter().find(|(_, s)| s.name == "build").unwrap().1;
        let run = &spans
            .iter()
            .find(|(_, s)| s.name == "[2/2] RUN make")
            .unwrap()
            .1;
        let from = &spans
            .iter()
            .find(|(_, s)| s.name.starts_with("[1/2] FROM"))
            .unwrap()
            .1;
        assert_eq!(run.parent_span_id, root.span_id);
        assert_eq!(run.trace_id, root.trace_id);
        assert_eq!(
            run.status.as_ref().map(|s| (s.code, s.message.as_str())),
            Some((StatusCode::Error as i32, "exit code: 2"))
        );
        assert_eq!(
            root.status.as_ref().map(|s| s.code),
            Some(StatusCode::Error as i32)
        );
        assert_eq!(attribute(from, "cached"), Some(&Value::BoolValue(true)));
        assert_eq!(
            attribute(run, "vertex"),
            Some(&Value::StringValue("sha256:bb".into()))
        );
    }
}

#[test]
fn an_endpoint_nobody_answers_on_does_not_hold_the_build() {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for protocol in [Protocol::HttpBinary, Protocol::Grpc] {
        let mut c = config(format!("http://127.0.0.1:{port}/v1/traces"), protocol);
        c.timeout = Duration::from_millis(500);
        // Returns (with a warning on stderr) instead of failing or hanging.
        render(c, true);
    }
    // A listener that accepts and never answers: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(
        format!("http://{}/v1/traces", silent.local_addr().unwrap()),
        Protocol::HttpBinary,
    );
    c.timeout = Duration::from_millis(500);
    render(c, true);
}

fn bud(root: &Path, context: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bud"));
    cmd.arg("--root")
        .arg(root)
        .args(["--progress", "plain", "-o", "type=tar,dest=/dev/null"])
        .arg(context);
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_SERVICE_NAME",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_sends_its_steps_to_the_otlp_endpoint() {
    if !(support::require_base_image() && support::require_runc()) {
        return;
    }
    for (protocol, name) in [
        (Protocol::HttpBinary, "http/protobuf"),
        (Protocol::Grpc, "grpc"),
    ] {
        let received = Received::default();
        let endpoint = receiver(protocol, received.clone()).await;
        let root = tempfile::tempdir().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            let out = bud(
                root.path(),
                &support::testdata("hello"),
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", name),
                ],
            );
            drop(root);
            out
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("warning: exporting traces"), "{stderr}");
        let spans = received.spans();
        assert!(
            spans.iter().all(|(service, _)| service == "bud"),
            "{spans:?}"
        );
        let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
        assert!(names.contains(&"build"), "{names:?}");
        // Each instruction that makes a step has its span, named as the progress shows it
        // (with the build argument's default expanded).
        let dockerfile =
            std::fs::read_to_string(support::testdata("hello").join("Dockerfile")).unwrap();
        let steps: Vec<String> = dockerfile
            .lines()
            .filter(|l| {
                ["RUN ", "COPY ", "WORKDIR "]
                    .iter()
                    .any(|i| l.starts_with(i))
            })
            .map(|l| l.replace("$GREETING", "hello"))
            .collect();
        assert_eq!(steps.len(), 3, "{dockerfile}");
        for step in &steps {
            assert!(
                names.iter().any(|n| n.ends_with(step.as_str())),
                "{name}: no span for {step}: {names:?}"
            );
        }
        for n in names.iter().filter(|n| **n != "build") {
            assert!(
                stderr.contains(n),
                "{n} is not a step of the progress: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_still_sends_its_spans() {
    if !(support::require_base_image() && support::require_runc()) {
        return;
    }
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {}\nRUN exit 3\n", support::BASE_IMAGE),
    )
    .unwrap();
    let received = Received::default();
    let endpoint = receiver(Protocol::HttpBinary, received.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        bud(
            root.path(),
            context.path(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "ci-build"),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let spans = received.spans();
    assert!(spans.iter().all(|(service, _)| service == "ci-build"));
    let run = &spans
        .iter()
        .find(|(_, s)| s.name.ends_with("RUN exit 3"))
        .unwrap_or_else(|| panic!("{spans:?}"))
        .1;
    assert_eq!(
        run.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let root = &spans.iter().find(|(_, s)| s.name == "build").unwrap().1;
    assert_eq!(
        root.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
}

/// An http/protobuf receiver behind TLS, with a self-signed certificate for 127.0.0.1.
/// Returns its base URL and the certificate's PEM file.
async fn https_receiver(received: Received, dir: &Path) -> (String, std::path::PathBuf) {
    use tokio_rustls::rustls;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = dir.join("collector.pem");
    std::fs::write(&pem, cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, received) = (acceptor.clone(), received.clone());
            tokio::spawn(async move {
                // A client that distrusts the certificate ends its own connection.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let received = received.clone();
                    async move {
                        Ok::<_, Infallible>(answer(Protocol::HttpBinary, req, &received).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://{addr}"), pem)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_collector_is_verified_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    for trusted in [false, true] {
        let received = Received::default();
        let (base, pem) = https_receiver(received.clone(), dir.path()).await;
        let mut config = config(format!("{base}/v1/traces"), Protocol::HttpBinary);
        config.timeout = Duration::from_secs(5);
        config.certificate = trusted.then_some(pem);
        tokio::task::spawn_blocking(move || render(config, true))
            .await
            .unwrap();
        let spans = received.spans();
        if trusted {
            assert_eq!(spans.len(), 3, "{spans:?}");
        } else {
            assert!(
                spans.is_empty(),
                "sent to an unverified collector: {spans:?}"
            );
        }
    }
}
