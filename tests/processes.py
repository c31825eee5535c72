"""The test suite's processes (redis-server, Prometheus, the control plane): their ports, and
stopped by pid."""

from __future__ import annotations

import socket
import subprocess


def stop_process(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; nothing if it has already."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unique_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (held together while they are chosen)."""
    held = [socket.socket() for _ in range(n)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()
