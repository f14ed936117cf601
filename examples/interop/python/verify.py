"""Verifies a Claimbridge access token the way a Python upstream should, with
PyJWT, and prints its claims as JSON.

    python3 verify.py JWKS_URL ISSUER AUDIENCE TOKEN

Exits 1 with the reason on stderr when the token is refused. Needs PyJWT 2.x
with cryptography (Debian: python3-jwt python3-cryptography).
"""

import json
import sys
import time

import jwt

ALGORITHMS = ["ES256", "RS256", "PS256", "EdDSA"]  # never "none" or HS*
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068


class JWKClient(jwt.PyJWKClient):
    """PyJWKClient refetches the key set on every unknown kid, so a stream of
    tokens with made-up kids would hammer Claimbridge: this one refetches at
    most once per min_refresh seconds (and keeps the last keys on failure)."""

    def __init__(self, uri, min_refresh=30):
        super().__init__(uri)  # caches the key set for 300 s
        self.min_refresh = min_refresh
        self._last_fetch = None
        self._data = None

    def fetch_data(self):
        now = time.monotonic()
        if self._data is not None and now - self._last_fetch < self.min_refresh:
            return self._data
        self._last_fetch = now
        self._data = super().fetch_data()
        return self._data


def verify(jwks_client, issuer, audience, token):
    """Returns the claims of token, or raises jwt.InvalidTokenError."""
    signing_key = jwks_client.get_signing_key_from_jwt(token)  # by the header's kid
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=ALGORITHMS,
        audience=audience,  # aud must contain ours
        issuer=issuer,  # exact match with iss
        leeway=30,  # seconds of skew on exp/nbf/iat
        options={"require": ["exp", "iss", "aud", "sub"]},
    )
    # The signature covers the header too: now its typ can be trusted.
    typ = jwt.get_unverified_header(token).get("typ", "")
    if typ.lower() not in ACCESS_TOKEN_TYPES:
        raise jwt.InvalidTokenError(f"typ {typ!r} is not an access token")
    return claims


def main():
    if len(sys.argv) != 5:
        print("usage: verify.py JWKS_URL ISSUER AUDIENCE TOKEN", file=sys.stderr)
        return 2
    jwks_url, issuer, audience, token = sys.argv[1:]
    # Create the client once per process: it caches the key set.
    jwks_client = JWKClient(jwks_url)
    try:
        claims = verify(jwks_client, issuer, audience, token)
    except jwt.PyJWTError as err:
        print(f"token refused: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
