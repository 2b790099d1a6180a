"""Starting the real service on 127.0.0.1 for the tests and the reliability benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from serving.launch import SERVICE, start_service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    proc: subprocess.Popen
    base: str
    log: Path
    key: str

    def client(self, headers: dict | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}", **(headers or {})},
                            timeout=30)

    def workers(self) -> list[int]:
        """Process ids of the HTTP workers (BentoML's main process starts them)."""
        import psutil

        pids = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if "_bentoml_impl.worker.service" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                    pids.append(p.pid)
            except psutil.Error:  # exited (or a zombie) while we looked
                continue
        return sorted(pids)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def launch(env: dict, log: Path, port: int, service: str = SERVICE) -> subprocess.Popen:
    """Run ``bentoml serve`` on the service, its output in ``log``."""
    return start_service(env, log.parent / f"bentoml-{port}", "127.0.0.1", port, service=service, log=log.open("w"))


def start(settings_env: dict[str, str], log: Path, key: str, ready_within: float = 120,
          service: str = SERVICE) -> Served:
    """Start the service with ``PROSPECT_*`` settings and wait until every worker answers /readyz."""
    port = free_port()
    env = {**os.environ, "PROSPECT_API_KEY": key, "OMP_WAIT_POLICY": "PASSIVE", **settings_env}
    proc = launch(env, log, port, service)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + ready_within
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return Served(proc, base, log, key)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"service did not become ready in {ready_within:.0f} s")
