"""Saying that an analysis finished: a POST to the upload's `webhook` URL (or the server's
`webhook_url`) when the analysis ends done or failed, so a ticket system need not poll.

The body is JSON: `event` ("analysis.finished"), `delivery` (an id, the same on every retry),
`sent_at`, `analysis` (id, name, status, message, summary) and `links` (the analysis and its
Markdown report, as paths under the server's address). With `webhook_secret` set, the header
`X-Correlator-Signature-256: sha256=HEX` is the HMAC-SHA256 of the exact body bytes under that
secret (as GitHub signs its webhooks), which the receiver recomputes and compares in constant time.

Delivery is bounded: `webhook_attempts` tries at most, `webhook_backoff` seconds before the
second, doubling after (capped at a minute); a 2xx ends it, as does a 4xx other than 408 and
429 (the receiver refuses, another try will not change that). Deliveries run on two threads of
their own, never on the scheduler's, and stop with the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from correlator.api.settings import Settings
from correlator.api.storage import AnalysisRow

log = logging.getLogger("correlator.api.webhooks")

SIGNATURE_HEADER = "X-Correlator-Signature-256"
EVENT_HEADER = "X-Correlator-Event"
DELIVERY_HEADER = "X-Correlator-Delivery"
#: Longest wait between two tries (seconds).
MAX_BACKOFF = 60.0
#: Seconds a receiver has to answer one try.
TIMEOUT = 10.0


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def payload(row: AnalysisRow, delivery: str) -> dict[str, Any]:
    summary = (row.report or {}).get("summary")
    path = f"/api/v1/analyses/{row.id}"
    return {"event": "analysis.finished", "delivery": delivery,
            "sent_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "analysis": {"id": row.id, "name": row.name, "status": row.status, "message": row.message,
                         "summary": summary},
            "links": {"analysis": path, "findings": f"{path}/findings", "report": f"{path}/report?format=md"}}


class Notifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="correlator-webhook")
        self._stopping = threading.Event()

    def finished(self, row: AnalysisRow, seconds: float) -> None:
        """An Analyser listener: queue the delivery, if the analysis or the server names a URL."""
        url = row.webhook or self.settings.webhook_url
        if url and not self._stopping.is_set():
            self._pool.submit(self.deliver, row, url)

    def deliver(self, row: AnalysisRow, url: str) -> bool:
        """Try until delivered or out of tries; whether it was delivered."""
        delivery = uuid.uuid4().hex
        body = json.dumps(payload(row, delivery)).encode("utf-8")
        headers = {"Content-Type": "application/json", EVENT_HEADER: "analysis.finished", DELIVERY_HEADER: delivery,
                   "User-Agent": "correlator-webhook"}
        secret = self.settings.webhook_secret
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret.get_secret_value(), body)
        wait = self.settings.webhook_backoff
        fields = {"analysis_id": row.id, "delivery": delivery}
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            for attempt in range(1, self.settings.webhook_attempts + 1):
                if attempt > 1 and self._stopping.wait(wait):
                    return False
                if attempt > 1:
                    wait = min(MAX_BACKOFF, wait * 2)
                try:
                    answer = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    log.warning("webhook try %d for analysis %s failed: %s", attempt, row.id, type(exc).__name__,
                                extra={**fields, "attempt": attempt})
                    continue
                if answer.is_success:
                    log.info("webhook for analysis %s delivered (try %d)", row.id, attempt,
                             extra={**fields, "attempt": attempt, "status": answer.status_code})
                    return True
                log.warning("webhook try %d for analysis %s: HTTP %d", attempt, row.id, answer.status_code,
                            extra={**fields, "attempt": attempt, "status": answer.status_code})
                if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                    return False
        log.error("webhook for analysis %s not delivered after %d tries", row.id, self.settings.webhook_attempts,
                  extra=fields)
        return False

    def stop(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
