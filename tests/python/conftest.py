"""Starts the real `tug server` for the Python end-to-end tests.

The binary comes from $TUG_BIN, by default target/debug/tug in the repository.
One server serves the whole session; each test works in a namespace of its own.
"""

import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
TUG_BIN = Path(os.environ.get("TUG_BIN", REPO / "target" / "debug" / "tug"))
# Debug builds on two shared cores can be slow to start; a healthy server is
# ready long before this.
PATIENCE_SECONDS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `tug server` on a temporary data dir and a free port."""

    def __init__(self, root):
        self.data_dir = Path(root) / "data"
        self.log_path = Path(root) / "server.log"
        self.kubeconfig = self.data_dir / "admin.kubeconfig"
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                # No node: these tests are about the API, and pods a node ran
                # would leave mounts behind in the temporary data dir.
                [TUG_BIN, "server", "--data-dir", self.data_dir,
                 "--port", str(self.port), "--bind-address", "127.0.0.1",
                 "--disable-agent"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def api_client(self):
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def wait_ready(self):
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tug server exited:\n{self.log()}")
            if self.kubeconfig.exists() and self._readyz() == "ok":
                return
            time.sleep(0.2)
        raise RuntimeError(f"tug server not ready:\n{self.log()}")

    def _readyz(self):
        try:
            with self.api_client() as api:
                response = api.rest_client.request(
                    "GET", api.configuration.host + "/readyz", _request_timeout=5)
                return response.read().decode()
        except Exception:  # not listening or not ready yet: poll again
            return None

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="tug-e2e-py-") as root:
        srv = Server(root)
        try:
            srv.wait_ready()
            yield srv
        finally:
            srv.stop()


@pytest.fixture
def api(server):
    with server.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api, request):
    """A fresh namespace named after the test."""
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name
