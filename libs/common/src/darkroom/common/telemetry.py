"""OpenTelemetry for every service: traces, metrics, and JSON logs that carry trace ids.

Nothing is exported unless ``DARKROOM_OTLP_ENDPOINT`` names a collector (OTLP over HTTP);
spans are still made, so trace context flows through Kafka headers either way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry import context, metrics, propagate, trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pythonjsonlogger.json import JsonFormatter

from darkroom.common.settings import CommonSettings


def setup(
    service: str, settings: CommonSettings, *, processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider:
    """Set up logging, tracing and metrics for one service process; returns its tracer provider."""
    _setup_logging(service, settings.log_level)
    resource = Resource.create(
        {"service.name": f"darkroom-{service}", "service.namespace": "darkroom"}
    )
    tracer_provider = TracerProvider(resource=resource)
    for processor in processors:
        tracer_provider.add_span_processor(processor)
    readers = []
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        )
        readers.append(
            PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
        )
    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # first runtime of the process
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return tracer_provider


class _TraceIds(logging.Filter):
    """Adds the current trace and span ids to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


def _setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_TraceIds())
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def instrument(app: FastAPI, tracer_provider: TracerProvider) -> None:
    """Trace the service's HTTP requests and its PostgreSQL queries."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls="/healthz,/readyz",
        # A span per body chunk would cost more than the upload it describes.
        exclude_spans=["receive", "send"],
    )
    postgres = AsyncPGInstrumentor()
    if not postgres.is_instrumented_by_opentelemetry:  # once per process
        postgres.instrument(tracer_provider=tracer_provider)


def current_trace_headers() -> dict[str, str]:
    """The W3C trace context of the current span, to be stored or sent with a message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def attach_trace(headers: Mapping[str, str]) -> object:
    """Make the trace context carried by ``headers`` current; returns the token to detach."""
    return context.attach(propagate.extract(dict(headers)))


def detach_trace(token: object) -> None:
    context.detach(token)  # type: ignore[arg-type]
