"""Retries that do not duplicate work: an `Idempotency-Key` header names one upload (a client
that timed out and sends again gets the analysis its first request made), and the same bundle
bytes, keyed or not, are recognised by their SHA-256 (the existing analysis is answered).

A key is remembered as long as its analysis is kept; the same key with other bytes is a client
error: 409, the state of the server conflicting with the request (the IETF's Idempotency-Key draft
suggests 422, but the body itself is valid: sent with a new key it is accepted)."""

from __future__ import annotations

from fastapi import HTTPException, status

from correlator.api.storage import AnalysisRow, Store

HEADER = "Idempotency-Key"
#: What a key may be (the route declares it, so a bad key is a 422 naming the header).
PATTERN = r"^[\x21-\x7e]{1,255}$"


def earlier(store: Store, key: str | None, digest: str) -> AnalysisRow | None:
    """The analysis these bytes (or this key) already have, if any."""
    if key is not None:
        row = store.by_idempotency_key(key)
        if row is not None:
            if row.digest != digest:
                raise HTTPException(status.HTTP_409_CONFLICT,
                                    f"{HEADER} {key!r} was sent before with another upload (analysis {row.id}): "
                                    "use a new key for a new bundle")
            return row
    return store.by_digest(digest)
