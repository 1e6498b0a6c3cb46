"""Optional HMAC-SHA256 signing of encoded messages.

A signed body is ``b"sig1." + hex(hmac) + b"." + json``: the signature covers the exact
bytes that were sent, so verification never depends on re-encoding. With several keys
(rotation) the first signs and any verifies. With no keys, bodies are plain JSON and a
signed body is still accepted (the prefix is stripped unverified only when no key is set).
"""

from __future__ import annotations

from collections.abc import Sequence

PREFIX = b"sig1."


class SignatureError(Exception):
    """The body is unsigned, or signed with none of the configured keys."""


def _mac(key: str, payload: bytes) -> bytes:
    import hashlib  # imported on first use: it loads OpenSSL, which unsigned apps don't need
    import hmac

    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest().encode()


def sign(payload: bytes, keys: Sequence[str]) -> bytes:
    if not keys:
        return payload
    return PREFIX + _mac(keys[0], payload) + b"." + payload


def verify(body: bytes, keys: Sequence[str]) -> bytes:
    """Return the JSON payload of `body`, or raise SignatureError when keys are configured
    and the body is unsigned or its signature matches none of them."""
    if not body.startswith(PREFIX):
        if keys:
            raise SignatureError("message is not signed, and this app requires signed messages")
        return body
    signature, sep, payload = body[len(PREFIX):].partition(b".")
    if not sep:
        raise SignatureError("signed message is malformed (no payload after the signature)")
    if not keys:
        return payload
    from hmac import compare_digest

    if any(compare_digest(signature, _mac(key, payload)) for key in keys):
        return payload
    raise SignatureError("message signature matches none of the configured signing keys")
