"""systemd's notify protocol in a few lines: one datagram per state, no-op when unset."""

from __future__ import annotations

import os
import socket


class SdNotifier:
    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET")

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, state: str) -> bool:
        """Send e.g. ``READY=1``; return False (never raise) when it cannot be sent."""
        if not self._address:
            return False
        addr = self._address
        if addr.startswith("@"):  # abstract namespace socket
            addr = "\0" + addr[1:]
        try:
            # Non-blocking: a receiver that stops reading (its queue holds ~10 datagrams) must
            # not stall the event loop; the message is dropped instead (OSError: EAGAIN).
            kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            with socket.socket(socket.AF_UNIX, kind) as sock:
                sock.connect(addr)
                sock.sendall(state.encode())
        except OSError:
            return False
        return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec, or None when the watchdog is off for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
