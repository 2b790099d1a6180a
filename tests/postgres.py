"""A throwaway PostgreSQL cluster for the tests, so the store is proven on a server database too.

Debian's `postgresql` package ships the server binaries; the cluster lives in a temporary folder,
listens only on a Unix socket there, and is stopped at the end of the session.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def temporary_cluster(bin_dir: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL to a fresh cluster; as root, the server runs as the `postgres` user."""
    folder = Path(tempfile.mkdtemp(prefix="prospect-pg-"))
    data, socket_dir = folder / "data", folder
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(folder, "postgres")
        folder.chmod(0o755)
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "prospect",
                    "-E", "UTF8"], check=True, capture_output=True, env=env)
    options = f"-c listen_addresses='' -k {socket_dir} -c fsync=off"
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
                    str(folder / "server.log"), "start"], check=True, capture_output=True, env=env)
    try:
        yield f"postgresql+psycopg://prospect@/postgres?host={socket_dir}"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, env=env)
        shutil.rmtree(folder, ignore_errors=True)
