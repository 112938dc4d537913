"""A tracking-server folder's state: where its files live, the saved ports, and whether a PID or
a port is in use, checked against real processes and sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import psutil

from pipeline.io import write_json
from pipeline.server_state import (
    Layout,
    Ports,
    alive,
    port_free,
    port_open,
    read_pid,
    saved_ports,
    wait_gone,
)


def test_every_file_lives_in_the_folder(tmp_path):
    layout = Layout(tmp_path)
    names = [
        layout.pgdata,
        layout.socket_dir,
        layout.artifacts,
        layout.pg_log,
        layout.mlflow_log,
        layout.mlflow_pid_file,
        layout.password_file,
        layout.state_file,
    ]
    assert all(path.parent == tmp_path for path in names) and len(set(names)) == 8


def test_the_ports_of_the_last_start_are_read_back(tmp_path):
    layout = Layout(tmp_path)
    assert saved_ports(layout) is None
    write_json(layout.state_file, {"host": "0.0.0.0", "port": 5001, "pg_port": 5434})
    ports = saved_ports(layout)
    assert ports == Ports("0.0.0.0", 5001, 5434)
    assert ports.url == "http://127.0.0.1:5001"  # this machine's clients go through loopback
    assert Ports("10.0.0.5", 5001, 5434).url == "http://10.0.0.5:5001"


def test_a_pid_file_is_read_or_ignored(tmp_path):
    pid_file = tmp_path / "x.pid"
    assert read_pid(pid_file) is None
    pid_file.write_text("1234\n/var/lib/data\n", encoding="utf-8")  # postmaster.pid's layout
    assert read_pid(pid_file) == 1234
    pid_file.write_text("not a pid\n", encoding="utf-8")
    assert read_pid(pid_file) is None


def test_a_process_is_alive_only_while_it_runs_and_has_the_name():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10  # until exec has given the child its command line
        while not psutil.Process(process.pid).cmdline() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert alive(process.pid, "python")
        assert not alive(process.pid, "postgres")  # a reused PID of another program
        assert not alive(None, "python")
    finally:
        process.kill()
    assert wait_gone([process.pid], 10)  # a zombie counts as gone
    assert not alive(process.pid, "python")
    process.wait()


def test_wait_gone_times_out_on_a_running_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not wait_gone([process.pid], 0.5)
    finally:
        process.kill()
        process.wait()


def test_a_listening_port_is_open_and_not_free():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_open(port) and not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port) and not port_open(port)
