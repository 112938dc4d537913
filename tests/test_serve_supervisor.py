"""`serve`'s parent process (pipeline/serve/supervisor.py): workers take traffic only once
loaded, one that dies is replaced, and SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import psutil
import pytest
import requests


@pytest.mark.e2e
def test_two_workers_take_traffic_only_when_loaded_and_stop_on_sigterm(sample_repo, servers):
    with servers.start(servers.serve_command("--workers", "2"), sample_repo) as (process, log):
        base = log.wait_for(r"listening on (http://\S+);", 120).group(1)
        results: list = []
        stop = threading.Event()

        def client():
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        response = session.post(
                            base + "/invocations", json=servers.good, timeout=300
                        )
                        results.append(response.status_code)
                    except requests.RequestException as exc:
                        results.append(type(exc).__name__)

        thread = threading.Thread(target=client)
        thread.start()
        pings = []
        while not pings or pings[-1][0] != 200:
            response = requests.get(base + "/ping", timeout=300)
            pings.append((response.status_code, response.text))
            time.sleep(0.2)
        # Each worker logs "ready" before it counts as ready; /ping said 200, so both have.
        log.wait_for(r"worker 0 \(pid \d+\) ready", 2)
        log.wait_for(r"worker 1 \(pid \d+\) ready", 2)
        for status, text in pings[:-1]:
            assert status == 503 and re.search(r"[01] of 2 workers", text)
        time.sleep(1)
        stop.set()
        thread.join()
        assert results and set(results) == {200}, results

        # A worker that dies is replaced; the other one answers meanwhile.
        pids = {int(m) for m in re.findall(r"worker \d \(pid (\d+)\) ready", log.text())}
        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        log.wait_for(r"worker \d exited with code -9; restarting", 30)
        assert servers.still_serving(base)
        assert requests.get(base + "/ping", timeout=60).status_code == 503
        servers.wait_ready(base)
        assert servers.still_serving(base)

        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        psutil.wait_procs(workers, timeout=10)
        assert not servers.session(process.pid)
        log.wait_for("^stopped$", 5)
