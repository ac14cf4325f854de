"""Fixtures: a real `tidelog serve` process on free loopback ports."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import tidelog

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker_binary() -> str:
    path = os.environ.get("TIDELOG_BIN") or str(REPO / "target" / "debug" / "tidelog")
    if not os.path.exists(path):
        pytest.exit(
            f"broker binary {path} not found: build it with `cargo build --workspace --bins` "
            "or set TIDELOG_BIN",
            returncode=2,
        )
    return path


@pytest.fixture(scope="session")
def broker():
    """Address (`host:port`) of a broker running for the whole session."""
    data_dir = tempfile.mkdtemp(prefix="tidelog-py-")
    proc = None
    for _attempt in range(3):
        port, http_port = _free_port(), _free_port()
        log = open(os.path.join(data_dir, "broker.log"), "ab")
        proc = subprocess.Popen(
            [
                _broker_binary(),
                "serve",
                "--data-dir",
                os.path.join(data_dir, "data"),
                "--listen",
                f"127.0.0.1:{port}",
                "--http-listen",
                f"127.0.0.1:{http_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http_port}/readyz", timeout=1
                ) as r:
                    if r.status == 200:
                        ready = True
                        break
            except OSError:
                pass
            time.sleep(0.05)
        if ready:
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        with open(os.path.join(data_dir, "broker.log"), "rb") as f:
            tail = f.read()[-4000:].decode(errors="replace")
        pytest.exit(f"broker did not become ready:\n{tail}", returncode=2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def admin(broker):
    return tidelog.AdminClient(broker)


@pytest.fixture
def topic(admin):
    """A fresh 3-partition topic."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin.create_topic(name, partitions=3)
    return name


@pytest.fixture
def make_topic(admin):
    def make(partitions=1, config=None):
        name = f"t-{uuid.uuid4().hex[:10]}"
        admin.create_topic(name, partitions=partitions, config=config)
        return name

    return make
