"""`bridge serve`: uvicorn serving the Starlette app over HTTP or HTTPS, with the sync
scheduler in the same process."""

from __future__ import annotations

import logging

import uvicorn

from bridge.addresses import is_loopback
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.scheduler import SyncScheduler
from bridge.web import create_app

log = logging.getLogger(__name__)


def listen_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def check_listener(settings: Settings) -> None:
    """Refuse to take directory passwords over plain HTTP from the network."""
    server = settings.server
    host, _ = listen_address(server.listen)
    if server.tls_cert or server.allow_plain_http_basic or is_loopback(host):
        return
    raise ConfigError("HTTP Basic carries directory passwords, and this listener is neither "
                      "HTTPS nor on loopback: set tls_cert and tls_key, listen on 127.0.0.1 "
                      "behind a TLS proxy, or (knowingly) allow_plain_http_basic = true",
                      section="server", option="listen", value=server.listen)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when a signal asks it to stop, so that push
    streams end cleanly instead of being cut when the grace period runs out."""

    def __init__(self, config: uvicorn.Config, on_exit) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> None:
    check_listener(settings)
    if not settings.sources:
        raise ConfigError("no sources configured: add at least one [sources.NAME] table")
    host, port = listen_address(settings.server.listen)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=host, port=port,
        ssl_certfile=settings.server.tls_cert or None, ssl_keyfile=settings.server.tls_key or None,
        proxy_headers=False,  # the app's own middleware honours only trusted_proxies
        server_header=False, access_log=False, log_config=None, lifespan="off",
        # push streams end at the signal (below); anything else still running gets this long
        timeout_graceful_shutdown=5)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its job chatter, not ours
    scheduler = SyncScheduler(settings)
    scheduler.start()
    scheme = "https" if settings.server.tls_cert else "http"
    log.info("serving JMAP on %s://%s (public URL %s)", scheme, settings.server.listen,
             settings.server.public_url)
    try:
        _Server(config, on_exit=app.state.bridge.shutdown).run()
    finally:
        scheduler.shutdown()
