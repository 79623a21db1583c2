"""Which storage engine the SDK suites run the server on.

`CERTPLANE_SDK_ENGINE=postgres` gives every server a fresh PostgreSQL database of its own (on
`CERTPLANE_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test), passed to `serve` and
the admin commands through `CERTPLANE_DATABASE_URL`; the databases are dropped when the session
ends. Anything else (the default) is the embedded SQLite in the server's data dir.
"""

import atexit
import os
import subprocess
import uuid

ENGINE = os.environ.get("CERTPLANE_SDK_ENGINE", "sqlite")
ADMIN_URL = os.environ.get("CERTPLANE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")

_databases: dict[str, str] = {}


def _psql(sql: str) -> None:
    subprocess.run(["psql", ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _drop_all() -> None:
    for name in _databases.values():
        try:
            _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except (subprocess.CalledProcessError, OSError):
            pass


def database_url(data_dir) -> str | None:
    """The database of the server whose data dir is `data_dir` (the same one across restarts)."""
    if ENGINE != "postgres":
        return None
    key = str(data_dir)
    if key not in _databases:
        name = f"certplane_sdk_{uuid.uuid4().hex[:16]}"
        _psql(f"CREATE DATABASE {name}")
        if not _databases:
            atexit.register(_drop_all)
        _databases[key] = name
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{_databases[key]}"


def server_env(data_dir) -> dict:
    """The environment for `certplane serve` / `certplane admin` on this data dir."""
    env = dict(os.environ)
    env.pop("CERTPLANE_DATABASE_URL", None)
    url = database_url(data_dir)
    if url:
        env["CERTPLANE_DATABASE_URL"] = url
    return env
