"""One way to open a CQL connection over TLS, for every CQL path of the product and the rig.

Under ``MutualTlsAuthenticator`` the client certificate *is* the login: the server sends
AUTHENTICATE and expects an empty response; the Python driver then needs an auth provider that
answers ``b""`` (without one: ``AuthenticationFailed('Remote end requires authentication')``).
Under ``AllowAllAuthenticator`` the server never asks and the provider is never used, so the
certificate provider is the default. ``password=(user, secret)`` is for the password phase in
which roles and identities are created.
"""

from __future__ import annotations

import ssl


def _certificate_auth():
    from cassandra.auth import Authenticator, AuthProvider

    class CertificateAuthenticator(Authenticator):
        def initial_response(self):
            return b""

        def evaluate_challenge(self, challenge):
            return b""

    class CertificateAuthProvider(AuthProvider):
        def new_authenticator(self, host):
            return CertificateAuthenticator()

    return CertificateAuthProvider()


def cluster(
    hosts,
    ssl_context: ssl.SSLContext,
    *,
    port: int = 9042,
    pin: bool = False,
    timeout: float | None = None,
    consistency=None,
    request_timeout: float | None = None,
    password: tuple[str, str] | None = None,
):
    """A driver ``Cluster`` (not yet connected). ``pin``: talk only to ``hosts`` (node-local
    reads such as ``system_views``), and skip the schema and token metadata the driver would
    otherwise read and build on every connect (nine ``system_schema`` queries per connection,
    which a pinned statement never uses); ``consistency`` and ``request_timeout`` go into the
    default execution profile."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import (
        DCAwareRoundRobinPolicy,
        TokenAwarePolicy,
        WhiteListRoundRobinPolicy,
    )

    hosts = list(hosts)
    profile = {"load_balancing_policy": TokenAwarePolicy(DCAwareRoundRobinPolicy())}
    kwargs: dict = {}
    if pin:
        profile["load_balancing_policy"] = WhiteListRoundRobinPolicy(hosts)
        kwargs.update(schema_metadata_enabled=False, token_metadata_enabled=False)
    if consistency is not None:
        profile["consistency_level"] = consistency
    if request_timeout is not None:
        profile["request_timeout"] = request_timeout
    kwargs["execution_profiles"] = {EXEC_PROFILE_DEFAULT: ExecutionProfile(**profile)}
    if timeout is not None:
        kwargs.update(connect_timeout=timeout, control_connection_timeout=timeout)
    auth = PlainTextAuthProvider(*password) if password else _certificate_auth()
    return Cluster(
        hosts, port=port, ssl_context=ssl_context, auth_provider=auth, protocol_version=5, **kwargs
    )


def query(hosts, ssl_context: ssl.SSLContext, statement: str, timeout: float = 15.0, **kw):
    """Run one statement against ``hosts`` only and return the rows as dicts."""
    return query_served(hosts, ssl_context, statement, timeout, **kw)[0]


def query_served(hosts, ssl_context: ssl.SSLContext, statement: str, timeout=15.0, **kw):
    """``(rows, fingerprint)``: :func:`query`, plus the SHA-256 of the certificate served on
    the very connection the statement ran on (None when the driver does not tell)."""
    driver = cluster(hosts, ssl_context, pin=True, timeout=timeout, request_timeout=timeout, **kw)
    try:
        session = driver.connect()
        result = session.execute(statement, timeout=timeout)
        return [row._asdict() for row in result], _served(result)
    finally:
        driver.shutdown()


def _served(result) -> str | None:
    import hashlib

    try:  # the driver's own objects (3.x): the connection that carried the request
        der = result.response_future._connection._socket.getpeercert(binary_form=True)
    except (AttributeError, OSError, ValueError):
        return None
    return hashlib.sha256(der).hexdigest() if der else None
