"""The receiver a Python team would write, for the bench to measure ingest against.

FastAPI on uvicorn (uvloop, httptools), one confluent-kafka producer per
worker (idempotent, acks=all). `POST /webhooks/{source}` checks the generic
HMAC scheme exactly as ingest does (`X-Webhook-Signature` = lowercase hex
HMAC-SHA256 of `X-Webhook-Timestamp` followed by the raw body, an optional
`sha256=` prefix, the timestamp within the tolerance, a constant-time
compare), checks the body is JSON, produces the body byte for byte, and
answers 200 only once the broker acknowledged the record: the delivery
callback, served by a poll thread, resolves an asyncio future. A bad
signature is a 401, a refused or timed-out produce a 503. `GET /healthz`
answers 200.

Delivery guarantee: a 200 means the record is on the topic (acks=all); a 503
may still land, as with ingest.

Settings, from the environment:
  PEER_BROKERS         Kafka bootstrap servers (required)
  PEER_TOPIC           topic to write (required)
  PEER_SECRET          HMAC secret (required)
  PEER_SECRET_LABEL    label written in `verify-key` (default "bench")
  PEER_TOLERANCE_SECS  timestamp tolerance (default 300, as ingest's source)
  PEER_HEADERS         "one": a `provider` header only; "ingest": what
                       ingest writes, its metadata (source, provider,
                       content-type, received-at, request-id, verify-scheme,
                       verify-key, traceparent, verify-skew-ms) form-encoded
                       in one `ingest-meta` header
  PEER_PROVIDER        the `provider` header's value (default "generic")
  PEER_TIMEOUT_SECS    longest wait for an acknowledgement (default 10)
  PEER_READY_DIR       when set, each worker writes a file named after its pid
                       there once its producer reached the broker

Run: python -m uvicorn receiver:app --workers N --loop uvloop --http httptools
"""

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
import uuid
from contextlib import asynccontextmanager

from confluent_kafka import KafkaException, Producer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SCHEME = "hmac-sha256"


def setting(name, default=None):
    """An environment setting; a missing required one ends the worker with a message."""
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"receiver: {name} is not set")
    return value


def parse_unix_ms(text):
    """Seconds, or milliseconds when that large, as ingest reads them; None if invalid."""
    try:
        n = int(text)
    except ValueError:
        return None
    if n <= 0:
        return None
    return n if n >= 100_000_000_000 else n * 1000


def verify(headers, body, secret, tolerance_ms, now_ms):
    """The skew in ms when the signature holds, else None."""
    timestamp = headers.get("x-webhook-timestamp", "").strip()
    signature = headers.get("x-webhook-signature", "").strip()
    sent_ms = parse_unix_ms(timestamp)
    if sent_ms is None or not signature:
        return None
    skew_ms = sent_ms - now_ms
    if abs(skew_ms) > tolerance_ms:
        return None
    if signature.startswith("sha256="):
        signature = signature[len("sha256="):]
    if len(signature) != 64:
        return None
    try:
        provided = bytes.fromhex(signature)
    except ValueError:
        return None
    mac = hmac.new(secret, timestamp.encode(), hashlib.sha256)
    mac.update(body)
    return skew_ms if hmac.compare_digest(mac.digest(), provided) else None


class Delivery:
    """One producer and the thread that serves its delivery callbacks."""

    def __init__(self, brokers):
        self.producer = Producer(
            {
                "bootstrap.servers": brokers,
                "enable.idempotence": True,
                "acks": "all",
                # ingest's own producer settings, so only the receiver differs
                "linger.ms": 2,
                "message.timeout.ms": 300000,
                "compression.type": "none",
            }
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self.thread.start()

    def _poll(self):
        while not self.stopping.is_set():
            self.producer.poll(0.1)

    def send(self, topic, value, headers):
        """A future resolved when the broker acknowledged the record (or refused it)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def delivered(err, _msg):
            loop.call_soon_threadsafe(settle, future, err)

        self.producer.produce(topic, value=value, headers=headers, on_delivery=delivered)
        return future

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.producer.flush(5)


def settle(future, err):
    if future.done():  # the handler gave up waiting
        return
    if err is not None:
        future.set_exception(KafkaException(err))
    else:
        future.set_result(None)


def record_headers(kind, source, provider, request, label, skew_ms, now_ms, request_id):
    """The record's headers: a `provider` header, or what ingest writes for a
    generic source (its metadata, form-encoded in one `ingest-meta` header)."""
    if kind == "one":
        return [("provider", provider.encode())]
    traceparent = request.headers.get("traceparent") or (
        f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    )
    fields = [
        ("source", source),
        ("provider", provider),
        ("content-type", request.headers.get("content-type", "")),
        ("received-at", str(now_ms)),
        ("request-id", request_id),
        ("verify-scheme", SCHEME),
        ("verify-key", label),
        ("traceparent", traceparent),
        ("verify-skew-ms", str(skew_ms)),
    ]
    return [("ingest-meta", urllib.parse.urlencode(fields).encode())]


SETTINGS = {}


@asynccontextmanager
async def lifespan(_app):
    SETTINGS.update(
        topic=setting("PEER_TOPIC"),
        secret=setting("PEER_SECRET").encode(),
        label=setting("PEER_SECRET_LABEL", "bench"),
        tolerance_ms=int(setting("PEER_TOLERANCE_SECS", "300")) * 1000,
        headers=setting("PEER_HEADERS", "one"),
        provider=setting("PEER_PROVIDER", "generic"),
        timeout=float(setting("PEER_TIMEOUT_SECS", "10")),
    )
    if SETTINGS["headers"] not in ("one", "ingest"):
        sys.exit("receiver: PEER_HEADERS must be 'one' or 'ingest'")
    delivery = Delivery(setting("PEER_BROKERS"))
    # Reach the broker before saying ready, as ingest's readiness does.
    await asyncio.to_thread(delivery.producer.list_topics, SETTINGS["topic"], 30)
    SETTINGS["delivery"] = delivery
    ready_dir = os.environ.get("PEER_READY_DIR")
    if ready_dir:
        with open(os.path.join(ready_dir, str(os.getpid())), "w", encoding="utf-8") as f:
            f.write("ready\n")
    yield
    delivery.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.post("/webhooks/{source}")
async def webhook(source: str, request: Request):
    if source != "generic":
        return JSONResponse({"error": "unknown source"}, status_code=404)
    body = await request.body()
    now_ms = time.time_ns() // 1_000_000
    skew_ms = verify(request.headers, body, SETTINGS["secret"], SETTINGS["tolerance_ms"], now_ms)
    if skew_ms is None:
        return JSONResponse({"error": "bad signature"}, status_code=401)
    try:
        json.loads(body)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    request_id = str(uuid.uuid4())
    headers = record_headers(
        SETTINGS["headers"], source, SETTINGS["provider"], request, SETTINGS["label"],
        skew_ms, now_ms, request_id,
    )
    try:
        future = SETTINGS["delivery"].send(SETTINGS["topic"], body, headers)
        await asyncio.wait_for(future, SETTINGS["timeout"])
    except (KafkaException, BufferError, asyncio.TimeoutError) as error:
        return JSONResponse({"error": f"not stored: {error}"}, status_code=503)
    return {"status": "accepted", "id": request_id}
