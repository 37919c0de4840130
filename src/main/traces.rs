//! The process's log and trace output: log lines on stderr always, and with `[traces]
//! otlp_endpoint` set, every request's span exported over OTLP/HTTP (protobuf) to a collector.
//!
//! The exporter runs on the SDK's batch thread; its HTTP requests go through the project's
//! reqwest client on the server's tokio runtime (`Export` below), so no second HTTP stack and no
//! blocking client are built in. A stop flushes what is still queued before the process exits.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use telegram_oidc::config::TracesConfig;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The largest collector answer read; OTLP's answers are a few bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What a stop must flush: the tracer provider, when traces are on.
pub struct Traces(SdkTracerProvider);

impl Traces {
    /// Exports the spans still queued, then stops the exporter (bounded by its timeout).
    pub async fn shutdown(self) {
        let provider = self.0;
        // The SDK's shutdown blocks on its batch thread, whose exports run on this runtime.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("warning: the last traces were not all exported: {e}");
        }
    }
}

/// Installs the global subscriber: log lines on stderr (filtered by `RUST_LOG`), and, when
/// `traces` has an endpoint, the OpenTelemetry layer that exports the same spans. Must run on
/// the tokio runtime that serves.
pub fn init(traces: Option<&TracesConfig>) -> anyhow::Result<Option<Traces>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let traces = traces.filter(|t| t.enabled());
    let provider = traces.map(provider).transpose()?;
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("telegram-oidc")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    if let Some(config) = traces {
        tracing::info!(
            endpoint = config.otlp_endpoint.as_deref().unwrap_or(""),
            sample_ratio = config.sample_ratio,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(provider.map(Traces))
}

fn provider(config: &TracesConfig) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = config.otlp_endpoint.clone().unwrap_or_default();
    let timeout = Duration::from_secs(config.export_timeout_secs);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the OTLP exporter's HTTP client")?;
    let headers: HashMap<String, String> = config
        .otlp_headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_owned()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_headers(headers)
        .with_http_client(Export {
            client,
            runtime: tokio::runtime::Handle::current(),
        })
        .build()
        .context("traces.otlp_endpoint: cannot build the OTLP exporter")?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: each export is sent by reqwest on the server's runtime, and the
/// batch thread waits for its answer.
#[derive(Debug)]
struct Export {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Export {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut answer = client.execute(request).await?;
            let mut response = http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            let mut body = Vec::new();
            while let Some(chunk) = answer.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err::<_, HttpError>("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(response.body(Bytes::from(body))?)
        });
        sent.await?
    }
}
