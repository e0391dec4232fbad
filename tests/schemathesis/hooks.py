"""Schemathesis hooks for voicepaas: lets it send prompt uploads (audio/wav bodies)."""

import schemathesis


@schemathesis.serializer("audio/wav")
def wav(ctx, value):
    """Generated binary bodies go out as they are (the server checks the WAV header)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
