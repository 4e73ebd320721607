"""Where a run's files go: a new ``<out>/<run-id>/`` folder, or the interrupted run it continues.

A run continues (resumes) an earlier one when asked with ``--resume <run-id>``, when ``--run-id`` names an
unfinished run, or when, without ``--run-id``, ``--out`` holds an unfinished run of the same configuration. The
configuration stored in that run's manifest.json must be the same (settings that only say where files go may
differ), or the resume is refused: mixing cells trained under two configurations would be a silently wrong result.
A lock held for the whole run keeps a second process out of the folder.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from benchmark.common.errors import UsageError
from benchmark.common.files import read_json
from benchmark.run.config import RunConfig, comparable, differences

try:
    import fcntl
except ImportError:  # not on POSIX: no lock, the rest works
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
SCRATCH = {LOCK, ".work", ".write-test"}  # what a run leaves that is not a result


@dataclass
class RunFolder:
    directory: Path
    created: bool  # made by this run: removed again if the run fails on bad input before finishing any cell
    stored: dict | None  # manifest.json of the earlier attempt being continued
    lock: IO | None = None

    @property
    def resumed(self) -> bool:
        return self.stored is not None

    def check_machine(self, device: str, precision: str, engine: str = "torch") -> None:
        """A resumed run must train where it started: another device, precision or inference engine gives other
        numbers."""
        if not self.stored:
            return
        for name, now in (("device", device), ("precision", precision), ("inference_engine", engine)):
            before = self.stored.get(name)
            if before is not None and before != now:
                raise UsageError(
                    f"run {self.directory.name} trained with {name} {before} and this one would use {now}; resume it "
                    "on the machine it started on, or start a new run"
                )

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()  # releases the lock
            self.lock = None


def stored_manifest(directory: Path) -> dict | None:
    path = directory / "manifest.json"
    try:
        return read_json(path) if path.exists() else None
    except ValueError:
        return None


def holds_anything(directory: Path) -> bool:
    return directory.is_dir() and any(p.name not in SCRATCH for p in directory.iterdir())


def changed(stored: dict, config: RunConfig) -> list[str]:
    return differences(comparable(stored.get("config", {})), comparable(config.as_dict()))


def lock_folder(directory: Path) -> IO:
    """An exclusive lock on <run>/.lock, released by the kernel however the process ends (also SIGKILL)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK, "w")  # noqa: SIM115 - held open for the whole run
    except OSError as error:
        raise UsageError(
            f"cannot write results to {directory} ({error.strerror}); pass a writable folder with --out"
        ) from None
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UsageError(
                f"run {directory.name} is in progress in another process; wait for it, or choose another --run-id"
            ) from None
    return handle


def _resume(directory: Path, stored: dict, config: RunConfig) -> RunFolder:
    found = changed(stored, config)
    if found:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise UsageError(
            f"run {directory.name} was made with another configuration ({found[0]}{more}); resume it with the "
            "options it was started with, or choose another --run-id"
        )
    return RunFolder(directory, created=False, stored=stored, lock=lock_folder(directory))


def _new(directory: Path) -> RunFolder:
    lock = lock_folder(directory)
    try:
        probe = directory / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        lock.close()
        raise UsageError(
            f"cannot write results to {directory} ({error.strerror}); pass a writable folder with --out"
        ) from None
    return RunFolder(directory, created=True, stored=None, lock=lock)


def _unfinished_with_same_config(out: Path, config: RunConfig) -> RunFolder | None:
    """The newest unfinished run under ``out`` with this configuration that no process is running."""
    for manifest in sorted(out.glob("*/manifest.json"), reverse=True):
        stored = stored_manifest(manifest.parent)
        if not stored or stored.get("state") == "finished" or changed(stored, config):
            continue
        with contextlib.suppress(UsageError):  # locked: another process is running it
            return RunFolder(manifest.parent, created=False, stored=stored, lock=lock_folder(manifest.parent))
    return None


def open_run_folder(config: RunConfig) -> RunFolder:
    """The folder this run writes to, locked; refuses an existing folder it must not continue."""
    if config.resume:
        directory = config.out / str(config.run_id)
        stored = stored_manifest(directory)
        if stored is None:
            raise UsageError(
                f"no run {config.run_id!r} to resume in {config.out} (no manifest.json there); pass the --out it "
                "was written to"
            )
        return _resume(directory, stored, config)
    if config.run_id:
        directory = config.out / config.run_id
        if not holds_anything(directory):
            return _new(directory)
        stored = stored_manifest(directory)
        if stored is None or changed(stored, config):
            raise UsageError(f"{directory} already holds results; choose another --run-id or --out")
        if stored.get("state") == "finished":
            raise UsageError(
                f"{directory} already holds a finished run; pass --resume {config.run_id} to rebuild its results "
                "from its saved cells, or choose another --run-id"
            )
        return _resume(directory, stored, config)
    if config.out.is_dir():
        unfinished = _unfinished_with_same_config(config.out, config)
        if unfinished is not None:
            return unfinished
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    directory = config.out / run_id
    if holds_anything(directory):
        raise UsageError(f"{directory} already holds results; choose another --run-id or --out")
    return _new(directory)
