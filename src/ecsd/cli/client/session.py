"""What every client command shares: the connection options, the credentials file, the login, the
exit codes, and the mapping of client errors to one line on stderr.

Exit codes (docs/client-cli.md):

    0    done (with --wait: the job ended in SUCCESS)
    1    the job ended in FAIL (its error_code and fail_reason are on stderr)
    2    usage or configuration: a bad option, no or an unreadable credentials file, a file to write exists
    3    the API refused the request (its code and message on stderr), or a name matched no or several resources
    4    the endpoint could not be reached or gave no usable answer
    5    --wait / ``job wait`` gave up after --timeout seconds (the job goes on)
    130  interrupted (Ctrl-C) while waiting (the job goes on)
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from ecsd.cli.client.http import (  # noqa: F401 - the exit codes are re-exported for the commands
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Client,
    ClientError,
    NotFound,
)

REQUIRED_KEYS = ("domain_name", "user_name", "password", "project_id")


class Failure(click.ClickException):
    """A one-line ``Error: ...`` on stderr and this exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(ClientError):
    exit_code = EXIT_USAGE


def default_data_dir() -> str:
    """The server's default data directory (``ecsd.config.default_data_dir``), computed here: importing
    ecsd.config would import the server's domain and store packages, which this client must not need."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ecsd")


def credentials_path(given: str | None) -> str:
    """--credentials / ECSD_CREDENTIALS, else credentials.json in ECSD_DATA_DIR or the default data dir."""
    if given:
        return given
    return os.path.join(os.environ.get("ECSD_DATA_DIR") or default_data_dir(), "credentials.json")


def load_credentials(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            creds = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"no credentials file at {path} (give --credentials or set ECSD_CREDENTIALS; "
                          "`ecsd serve` writes one into its data directory at first start)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the credentials file {path}: {exc}") from None
    if not isinstance(creds, dict):
        raise ConfigError(f"the credentials file {path} does not hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if not isinstance(creds.get(k), str) or not creds.get(k)]
    if missing:
        raise ConfigError(f"the credentials file {path} lacks {', '.join(missing)}")
    return creds


@dataclass
class Session:
    """One command's connection: built from the options, logs in on first use of :attr:`client`."""

    endpoint_option: str | None
    credentials_option: str | None
    output: str
    _client: Client | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    @functools.cached_property
    def creds(self) -> dict[str, Any]:
        return load_credentials(credentials_path(self.credentials_option))

    @property
    def endpoint(self) -> str:
        endpoint = self.endpoint_option or self.creds.get("endpoint")
        if not endpoint:
            raise ConfigError("no endpoint: give --endpoint, set ECSD_ENDPOINT, or add \"endpoint\" to the "
                              "credentials file")
        return endpoint

    @property
    def client(self) -> Client:
        if self._client is None:
            client = Client(self.endpoint)
            try:
                client.login(self.creds)
            except BaseException:
                client.close()
                raise
            self._client = client
        return self._client

    @property
    def project_id(self) -> str:
        return self.creds["project_id"]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _connection_options(fn: Callable) -> Callable:
    fn = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="table for people; json: the API's JSON on stdout and nothing else.")(fn)
    fn = click.option("--credentials", metavar="FILE", envvar="ECSD_CREDENTIALS", default=None,
                      help="The credentials file `ecsd serve` writes [env ECSD_CREDENTIALS; default: "
                           "credentials.json in ECSD_DATA_DIR or ~/.local/share/ecsd].")(fn)
    fn = click.option("--endpoint", metavar="URL", envvar="ECSD_ENDPOINT", default=None,
                      help="The API endpoint [env ECSD_ENDPOINT; default: the credentials file's].")(fn)
    return fn


def api_command(group: click.Group, name: str | None = None, **kw: Any) -> Callable[[Callable], Callable]:
    """``@api_command(server, "list")``: a command of ``group`` with --endpoint, --credentials and
    --output, called with a :class:`Session` as ``session``; client errors end it with their exit code."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(endpoint: str | None, credentials: str | None, output: str, **params: Any) -> None:
            session = Session(endpoint, credentials, output)
            try:
                fn(session=session, **params)
            except ClientError as exc:
                raise Failure(str(exc), exc.exit_code) from None
            finally:
                session.close()

        own = list(getattr(run, "__click_params__", []))
        run.__click_params__ = []             # type: ignore[attr-defined]
        run = _connection_options(run)
        run.__click_params__ = run.__click_params__ + own   # type: ignore[attr-defined] - theirs, then these
        return group.command(name, **kw)(run)

    return wrap


def only_match(matches: list[dict[str, Any]], noun: str, how: str, ref: str) -> dict[str, Any]:
    """The one resource a lookup by ``how`` (``"name"``, ``"id or name"``) found: none or several is an error."""
    if not matches:
        raise NotFound(f"no {noun} has the {how} {ref!r}")
    if len(matches) > 1:
        raise NotFound(f"{len(matches)} {noun}s have the {how} {ref!r}: give one of their ids: "
                       + ", ".join(str(m.get("id")) for m in matches))
    return matches[0]


def read_password(enabled: bool) -> str | None:
    """The first line of stdin when --password-stdin was given."""
    if not enabled:
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise Failure("--password-stdin: stdin gave no password", EXIT_USAGE)
    return line


def one_credential(key_pair: str | None, password_stdin: bool, required: bool) -> tuple[str | None, str | None]:
    """(key pair name, password) from --key-pair / --password-stdin: at most one, or exactly one."""
    if key_pair and password_stdin:
        raise click.UsageError("give either --key-pair or --password-stdin, not both")
    if required and not key_pair and not password_stdin:
        raise click.UsageError("give --key-pair NAME or --password-stdin")
    return key_pair, read_password(password_stdin)
