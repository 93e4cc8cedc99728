"""What every server class shares: context-manager plumbing, and a server process in a directory
of its own (a temp dir removed at stop, or a given one kept) with the port-race retry."""

from __future__ import annotations

import signal
from pathlib import Path
from types import TracebackType
from typing import Self

from .cleanup import track, untrack
from .errors import StackError
from .ports import free_port
from .process import ServerProcess, chown, log_contains, make_tempdir, remove_tree

PORT_CLASH = "Address already in use"


class Server:
    """``with Server() as s:`` starts it and stops it at the end of the block.

    Subclasses say how to start (``_start``), how to stop (``stop``, which must cope with a
    half-done start) and whether it runs.
    """

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        """Start it unless it runs; what did start is stopped again when a later part fails."""
        if not self.running:
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ProcessServer(Server):
    """A server that is one process of ours (``_proc`` once started), named ``program`` in errors."""

    program = "server"

    def __init__(self) -> None:
        self._proc: ServerProcess | None = None

    @property
    def process(self) -> ServerProcess:
        if self._proc is None:
            raise StackError(f"{self.program} is not started")
        return self._proc

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL it (and what it forked), as a crash would."""
        if self._proc is not None:
            self._proc.kill()

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status once it ended (subprocess.TimeoutExpired after ``timeout``)."""
        return self.process.wait(timeout)


class DirServer(ProcessServer):
    """A server process with a directory: given (created when missing, kept at stop) or a temp dir.

    Subclasses name the program (``program``), the signal that stops it gracefully and how to
    launch it (``_launch``); ``_prepare`` may fill the directory first (initdb).
    """

    stop_signal = signal.SIGTERM
    stop_timeout = 10.0

    def __init__(self, *, port: int | None, directory: Path | None, log_path: Path | None) -> None:
        super().__init__()
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self._given_dir = directory
        self._log_path = log_path
        self._dir: Path | None = None

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise StackError(f"{self.program} is not started")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self._log_path or self.directory / f"{self.program}.log"

    def owner(self) -> str | None:
        """The OS user the server runs as (None: this process's)."""
        return None

    def _start(self) -> None:
        user = self.owner()
        if self._dir is None:
            self._make_dir(user)
            self._prepare(user)
        for attempt in range(1, (1 if self._port_fixed else 3) + 1):
            try:
                self._launch(user)
                return
            except StackError:
                # Another process may have bound the port between free_port() and the server.
                if self._port_fixed or attempt == 3 or not log_contains(self.log_path, PORT_CLASH):
                    raise
                self._new_ports()

    def stop(self) -> None:
        """Stop the server (its graceful signal, then SIGKILL) and delete a temp dir."""
        if self._proc is not None:
            self._proc.stop(self.stop_signal, timeout=self.stop_timeout)
            self._proc = None
        if self._dir is not None and self._given_dir is None:
            remove_tree(self._dir)
        self._dir = None
        untrack(self)

    def detach(self) -> None:
        """Leave the server running past this process: nothing stops it at exit any more."""
        self._proc = None
        self._dir = None
        untrack(self)

    def _make_dir(self, user: str | None) -> None:
        if self._given_dir is None:
            self._dir = make_tempdir(f"qc-{self.program}-", owner=user)
        else:
            self._dir = self._given_dir
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if user is not None:
                chown(self._dir, user)
        track(self)

    def _prepare(self, user: str | None) -> None:
        """Fill a fresh directory before the first launch."""

    def _launch(self, user: str | None) -> None:
        raise NotImplementedError

    def _new_ports(self) -> None:
        self.port = free_port()
