"""The bridge's exception tree; foreign exceptions are translated into these at each boundary.

    BridgeError                      one-line ``str()``, an ``exit_code`` for the CLI
    ├── UsageError                   a bad command-line argument
    ├── ConfigError                  a bad option: file, section, option, value, problem
    ├── DirectoryError               anything that went wrong talking to LDAP (bridge/directory/)
    │   ├── DirectoryUnavailable     no server reachable, or the connection was lost
    │   ├── DirectoryTimeout         a connect or response timeout
    │   ├── DirectoryTLSError        StartTLS refused, or the certificate did not verify
    │   ├── DirectoryAuthError       the bind was refused
    │   └── DirectorySearchError     a search ended with a non-success result code
    ├── StoreError                   SQLite failed, or the database is not ours (bridge/store/)
    │   ├── SyncBusy                 another sync run holds the store's run lock
    │   └── ReadTimeUp               a read ran past the time limit it was given
    └── SyncAborted                  the safety valve refused to apply a run
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_ABORTED = 3
EXIT_BUSY = 4


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    exit_code = EXIT_FAILED


class UsageError(BridgeError):
    """A command-line argument the verb cannot use."""

    exit_code = EXIT_CONFIG


class ConfigError(BridgeError):
    """An option that is missing, unknown, or has a value its converter refuses."""

    exit_code = EXIT_CONFIG

    def __init__(self, problem: str, *, origin: str = "", section: str = "",
                 option: str = "", value: object = None, secret: bool = False) -> None:
        self.problem = problem
        self.origin = origin
        self.section = section
        self.option = option
        self.value = value
        self.secret = secret
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = []
        if self.section:
            where.append(f"[{self.section}]")
        if self.option:
            shown = "'***'" if self.secret and self.value not in (None, "") else repr(self.value)
            where.append(self.option if self.value is None else f"{self.option} = {shown}")
        head = ": ".join(part for part in (self.origin, " ".join(where)) if part)
        return f"{head}: {self.problem}" if head else self.problem


class DirectoryError(BridgeError):
    """Talking to the directory failed; ``url`` names the server when one is known."""

    def __init__(self, message: str, *, url: str = "") -> None:
        self.message = message
        self.url = url
        super().__init__(f"{url}: {message}" if url else message)


class DirectoryUnavailable(DirectoryError):
    """No server answered, or a connection broke in the middle of an operation."""


class DirectoryTimeout(DirectoryError):
    """The server did not answer within the configured timeout."""


class DirectoryTLSError(DirectoryError):
    """TLS could not be established or the server's certificate was not trusted."""


class DirectoryAuthError(DirectoryError):
    """The server refused the bind credentials."""


class DirectorySearchError(DirectoryError):
    """A search finished with an LDAP result code other than success."""

    def __init__(self, message: str, *, url: str = "", result_code: int = 0,
                 base: str = "") -> None:
        self.result_code = result_code
        self.base = base
        super().__init__(message, url=url)


class StoreError(BridgeError):
    """The SQLite store could not be opened, migrated, read or written."""


class SyncBusy(StoreError):
    """Another sync run (in this or another process) is still applying to the same store."""

    exit_code = EXIT_BUSY


class ReadTimeUp(StoreError):
    """A read under ``Store.time_limit`` was still running when the limit passed; it was
    stopped and nothing it read is valid."""


class SyncAborted(BridgeError):
    """The run was refused before anything was written: deletions above the threshold,
    or a source that came back empty although it had entries."""

    exit_code = EXIT_ABORTED

    def __init__(self, reason: str, *, source: str = "") -> None:
        self.reason = reason
        self.source = source
        super().__init__(reason)
