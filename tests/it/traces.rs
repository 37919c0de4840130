//! OTLP traces: the `serve` binary exports one server span per request to a collector (a local
//! one here, decoding what it receives with OpenTelemetry's own protobuf messages), continues a
//! caller's `traceparent`, flushes on SIGTERM, and sends no secret along.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::cli::{Served, run, write_config};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const CLIENT_SECRET: &str = "not-a-real-secret-7d1f0c";

#[derive(Default)]
struct Received {
    api_keys: Vec<String>,
    raw: Vec<u8>,
    exports: Vec<ExportTraceServiceRequest>,
}

/// A collector on loopback: `POST /v1/traces` with an OTLP protobuf body.
async fn collector() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let Ok(export) = ExportTraceServiceRequest::decode(body.as_ref()) else {
                    return (StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut sink = sink.lock().unwrap();
                sink.api_keys.push(
                    headers
                        .get("x-api-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                );
                sink.raw.extend_from_slice(&body);
                sink.exports.push(export);
                (
                    StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/v1/traces"), received)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_a_span_per_request_continues_traceparent_and_flushes_on_stop() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut settings = std::fs::read_to_string(&config).unwrap();
    settings.push_str(&format!(
        "\n[traces]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"tg-traces-test\"\n\n[traces.otlp_headers]\nx-api-key = \"collector-key-1\"\n"
    ));
    std::fs::write(&config, settings).unwrap();

    let served = Served::start(&config, None);
    let address = served.address.clone();
    assert!(
        served.log.contains("exporting traces over OTLP/HTTP"),
        "{}",
        served.log
    );

    let http = reqwest::Client::new();
    let traced = http
        .get(format!("http://{address}/authorize?client_id=no-such-app"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), 400);
    let refused = http
        .post(format!("http://{address}/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "no-such-app"),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // SIGTERM: the server stops and exports what is still queued before it exits (the batch
    // exporter's own delay is 5 s; nothing has been sent yet).
    let (exit, log) = tokio::task::spawn_blocking(move || served.stop())
        .await
        .unwrap();
    assert!(exit.success(), "graceful stop exits 0, got {exit:?}: {log}");
    assert!(
        !log.contains("not all exported"),
        "every span was exported: {log}"
    );

    let received = received.lock().unwrap();
    assert!(!received.exports.is_empty(), "nothing was exported: {log}");
    assert!(
        received.api_keys.iter().all(|k| k == "collector-key-1"),
        "each export carries the configured header: {:?}",
        received.api_keys
    );
    let resources: Vec<_> = received
        .exports
        .iter()
        .flat_map(|e| &e.resource_spans)
        .collect();
    for resource in &resources {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref());
        assert_eq!(
            service,
            Some(&Value::StringValue("tg-traces-test".into())),
            "the configured service name"
        );
    }
    let spans: Vec<&Span> = resources
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let named = |name: &str| -> &Span {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name} in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };

    let authorize = named("GET /authorize");
    assert_eq!(authorize.kind, 2, "a server span");
    assert_eq!(
        attribute(authorize, "http.route"),
        Some(&Value::StringValue("/authorize".into()))
    );
    assert_eq!(
        attribute(authorize, "http.request.method"),
        Some(&Value::StringValue("GET".into()))
    );
    assert_eq!(
        attribute(authorize, "http.response.status_code"),
        Some(&Value::IntValue(400))
    );
    assert_eq!(
        hex::encode(&authorize.trace_id),
        TRACE_ID,
        "the caller's trace"
    );
    assert_eq!(
        hex::encode(&authorize.parent_span_id),
        PARENT_ID,
        "a child of the caller's span"
    );

    let token = named("POST /token");
    assert_eq!(token.kind, 2);
    assert_eq!(
        attribute(token, "http.response.status_code"),
        Some(&Value::IntValue(401))
    );
    assert_ne!(hex::encode(&token.trace_id), TRACE_ID, "a trace of its own");
    assert_eq!(token.trace_id.len(), 16);
    assert!(token.parent_span_id.is_empty(), "a root span");

    // The secret in the form never travels to the collector.
    let raw = String::from_utf8_lossy(&received.raw);
    assert!(
        !raw.contains(CLIENT_SECRET),
        "the client secret was exported"
    );
}

#[test]
fn a_wrong_traces_setting_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let base = std::fs::read_to_string(&config).unwrap();
    for (table, setting) in [
        (
            "otlp_endpoint = \"grpc://127.0.0.1:4317\"",
            "traces.otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"http://user:pw@127.0.0.1:4318/v1/traces\"",
            "traces.otlp_endpoint",
        ),
        ("sample_ratio = 1.5", "traces.sample_ratio"),
        ("export_timeout_secs = 0", "traces.export_timeout_secs"),
        (
            "[traces.otlp_headers]\n\"bad header\" = \"x\"",
            "traces.otlp_headers",
        ),
    ] {
        std::fs::write(&config, format!("{base}\n[traces]\n{table}\n")).unwrap();
        let (ok, _, stderr) = run(&config, &["check-config"]);
        assert!(!ok, "{table} was accepted");
        assert!(stderr.contains(setting), "{table}: {stderr}");
    }
}
