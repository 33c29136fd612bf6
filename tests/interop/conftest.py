"""Real repositories written by rdiff-backup 2.2.7, built once per test session.

Each variant is a repository with several sessions: a tree from :mod:`tests.interop.trees`,
backed up, mutated, backed up again, and so on (one session changes nothing, which rdiff-backup
shows differently). Session times are faked with ``--current-time`` (no sleeping); some of them
straddle a DST change in the variant's time zone so one repository holds time strings with two
UTC offsets. Before every backup the source is scanned, so each session knows exactly what its
backup must contain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.interop import trees

#: 2023-03-26 01:00 UTC is when Europe/Berlin moves from +01:00 to +02:00.
BERLIN_DST = 1_679_792_400
SESSION_STEP = 2_000
SESSIONS = 5
#: The session (0-based) before which the source is left as it is: a session that changes nothing.
UNCHANGED_SESSION = 3


@dataclass(frozen=True)
class Variant:
    """How one repository is written: rdiff-backup options and the writer's time zone."""

    name: str
    global_opts: tuple[str, ...] = ()  # before the action word
    backup_opts: tuple[str, ...] = ()  # after "backup"
    tz: str = "UTC"
    seed: int = 1
    #: characters rdiff-backup quotes in names (None: no --chars-to-quote given)
    chars_to_quote: str | None = None

    @property
    def api_opts(self) -> tuple[str, ...]:
        """The --api-version option of this variant, if any (also used to read it back)."""
        opts = self.global_opts
        if "--api-version" in opts:
            i = opts.index("--api-version")
            return opts[i : i + 2]
        return ()


VARIANTS: tuple[Variant, ...] = (
    Variant("default"),
    Variant("quote-colon", ("--chars-to-quote", ":"), tz="Europe/Berlin", chars_to_quote=":"),
    Variant("quote-upper", ("--chars-to-quote", "A-Z"), tz="Europe/Berlin", chars_to_quote="A-Z"),
    Variant("no-compression", backup_opts=("--no-compression",), tz="America/New_York", seed=2),
    Variant(
        "no-compression-api201",
        ("--api-version", "201"),
        ("--no-compression",),
        tz="Asia/Kolkata",
        seed=3,
    ),
    Variant("api201", ("--api-version", "201"), tz="Europe/Berlin", seed=4),
)


@dataclass
class Session:
    """One backup: its time, the source it saw (scanned just before) and what had changed."""

    time: int
    source: trees.Snapshot
    changes: list[str]


@dataclass
class Repo:
    """A repository written by rdiff-backup, with the history that produced it."""

    variant: Variant
    path: Path
    source: Path
    exe: str
    sessions: list[Session] = field(default_factory=list)

    @property
    def times(self) -> list[int]:
        return [s.time for s in self.sessions]

    def run(
        self, *args: str, check: bool = True, repo: Path | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """rdiff-backup <variant's --api-version> <args> (the repository is appended)."""
        return run_rdiff_backup(
            self.exe,
            [*self.variant.api_opts, *args, str(repo or self.path)],
            tz=self.variant.tz,
            check=check,
        )


def run_rdiff_backup(
    exe: str, args: Sequence[str], *, tz: str = "UTC", check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "TZ": tz, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    env.pop("RDIFF_BACKUP_API_VERSION", None)
    proc = subprocess.run([exe, *args], capture_output=True, env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"rdiff-backup {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


def session_times(count: int = SESSIONS) -> list[int]:
    """Distinct increasing session times, straddling Berlin's 2023 spring DST change."""
    first = BERLIN_DST - 2 * SESSION_STEP
    return [first + i * SESSION_STEP for i in range(count)]


def build_repo(exe: str, workdir: Path, variant: Variant) -> Repo:
    """Back up a generated tree SESSIONS times into a fresh repository."""
    workdir.mkdir(parents=True)
    repo = Repo(variant, workdir / "repo", workdir / "src", exe)
    changes = trees.build_tree(repo.source, variant.seed)
    for i, when in enumerate(session_times()):
        if i and i != UNCHANGED_SESSION:
            changes = trees.mutate_tree(repo.source, variant.seed * 1000 + i)
        elif i:
            changes = []
        snapshot = trees.scan(repo.source)
        run_rdiff_backup(
            exe,
            [
                *variant.global_opts,
                "--current-time",
                str(when),
                "backup",
                *variant.backup_opts,
                str(repo.source),
                str(repo.path),
            ],
            tz=variant.tz,
        )
        repo.sessions.append(Session(when, snapshot, changes))
    return repo


def copy_repo(src: Path, dst: Path) -> Path:
    """A faithful copy (special files, hard links, modes, owners): cp -a, not shutil."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def utc_timestring(epoch: int) -> str:
    """A time string in rdiff-backup's ``Z`` form (written here, not by the code under test)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def markers_in(data_dir: Path) -> list[str]:
    """The names of the current_mirror markers in an rdiff-backup-data directory."""
    return sorted(p.name for p in data_dir.glob("current_mirror.*"))


def dead_pid() -> int:
    """The pid of a process that has exited (for a stale marker's ``PID <n>``)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="session")
def rdiff_backup_repos(
    rdiff_backup: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Repo]:
    """Every variant, built in parallel (rdiff-backup runs are mostly waiting on I/O)."""
    base = tmp_path_factory.mktemp("rdiff-backup-repos")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            v.name: pool.submit(build_repo, rdiff_backup, base / v.name, v) for v in VARIANTS
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(params=[v.name for v in VARIANTS])
def repo(request: pytest.FixtureRequest, rdiff_backup_repos: dict[str, Repo]) -> Repo:
    """Each variant in turn."""
    return rdiff_backup_repos[request.param]


@dataclass
class Interrupted:
    """A repository whose last session never finished, and the session it was on top of."""

    path: Path
    finished: Repo | None  # the healthy repository it was copied from, if any
    failed_time: int
    previous_time: int
    how: str
    previous_source: trees.Snapshot  # what the last complete session backed up


@pytest.fixture(scope="session")
def marker_pattern_repo(
    rdiff_backup_repos: dict[str, Repo], tmp_path_factory: pytest.TempPathFactory
) -> Interrupted:
    """A copy of the default repository in the state an incremental backup leaves when it dies
    just after its first step (reference §5.1 step 3): a second ``current_mirror`` marker, for
    the new session time, naming a process that no longer runs."""
    healthy = rdiff_backup_repos["default"]
    dst = copy_repo(healthy.path, tmp_path_factory.mktemp("marker-pattern") / "repo")
    previous = healthy.times[-1]
    failed = previous + SESSION_STEP
    marker = dst / "rdiff-backup-data" / f"current_mirror.{utc_timestring(failed)}.data"
    marker.write_bytes(b"PID %d\n" % dead_pid())
    return Interrupted(
        dst, healthy, failed, previous, "second marker written by hand", healthy.sessions[-1].source
    )


@pytest.fixture(scope="session")
def killed_repo(rdiff_backup: str, tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    """rdiff-backup SIGKILLed in the middle of an incremental backup of many changed files."""
    work = tmp_path_factory.mktemp("killed")
    src, dst = work / "src", work / "repo"
    trees.build_bulk_tree(src, seed=7, files=1500, size=2048)
    first, second = session_times(2)
    before = trees.scan(src)
    run_rdiff_backup(rdiff_backup, ["--current-time", str(first), "backup", str(src), str(dst)])
    trees.touch_all(src, seed=8)
    data = dst / "rdiff-backup-data"
    env = {**os.environ, "TZ": "UTC"}
    proc = subprocess.Popen(
        [rdiff_backup, "--current-time", str(second), "backup", str(src), str(dst)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(markers_in(data)) >= 2:
                time.sleep(0.05)  # let it write some increments first
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail(f"rdiff-backup finished (exit {proc.returncode}) before it could be killed")
    markers = markers_in(data)
    assert len(markers) == 2, markers
    return Interrupted(dst, None, second, first, "rdiff-backup killed with SIGKILL", before)
