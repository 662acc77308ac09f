"""Re-run mutmut's mutants by hand: the ones it marked suspicious, timed out or left, in one process per worker.

mutmut 3 marks a mutant *suspicious* when its tests ran slower than expected (common when numba, torch or
threads are involved) and does not count it. This script runs each named mutant against the given test files,
with mutmut's own trampolines (``MUTANT_UNDER_TEST`` set per mutant, read at every call), inside one Python
process per worker so that imports are paid once, with an alarm per mutant for the ones that loop forever.
Run it from the project root after ``mutmut run`` made ``mutants/``::

    mutmut results --all true | grep -E "suspicious|survived|timeout" | cut -d: -f1 > names.txt
    python tools/rerun_mutants.py names.txt tests/core/test_model_oracles.py --workers 2 --out rerun.txt

Each line of ``--out`` is ``NAME killed TEST`` (TEST failed), ``NAME survived`` (no test failed) or
``NAME timeout-or-error-N`` (pytest's exit status N: interrupted, an internal or usage error, nothing collected;
``alarm``: past the time limit, whatever the tests reported): no verdict. Give the limit room: two workers share
the cores. Figures left open by one mutant's tests are closed before the next's.
With ``--selected``, each mutant runs only the tests of those files that mutmut recorded as reaching its
function (``mutants/mutmut-stats.json``), fastest first, and the tests of those files that mutmut has not seen
(written since its run), for every mutant: much quicker when the files hold slow tests that never call it
(``NAME no-tests`` when none does).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


class _Expired(KeyboardInterrupt):
    """The mutant ran past its time limit (pytest ends the run as interrupted, exit status 2: no verdict)."""


_EXPIRED = []  # set when the alarm fires: whatever pytest then reports, the mutant gets no verdict


def _timeout(signum, frame):
    _EXPIRED.append(True)
    raise _Expired("the mutant ran past its time limit")


def _reset_shared_state() -> None:
    """Undo what one mutant's tests leave behind for the next in this process.

    Figures left open pile up across runs until matplotlib warns (more than 20 open), which fails the next plot
    test under ``filterwarnings = error``: a kill the mutant did not cause.
    """
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


class _Failed:
    """A pytest plugin keeping the id of the first test that failed (the one that killed the mutant)."""

    first = ""

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and not self.first:
            self.first = report.nodeid


def _reaching(name: str, *, stats: dict, collected: list[str]) -> list[str]:
    """The ``collected`` tests that reach mutant ``name``'s function, then those mutmut has no record of.

    Reaching: as mutmut recorded (``stats``), fastest first. Ids mutmut recorded that no longer exist (renamed or
    re-parametrised since) are left out: pytest would fail on them, which is no kill.
    """
    have = set(collected)
    ids = [t for t in stats["tests_by_mangled_function_name"].get(name.rsplit("__mutmut_", 1)[0], []) if t in have]
    unseen = [t for t in collected if t not in stats["duration_by_test"]]
    return sorted(ids, key=lambda t: stats["duration_by_test"].get(t, 0.0)) + unseen


def _collected(tests: list[str]) -> list[str]:
    """The ids of the tests in the files ``tests``.

    Collected with the ``pytest_add_cli_args`` of ``[tool.mutmut]`` (a ``-k`` there deselects the same tests).
    """
    import tomllib

    extra = tomllib.loads(Path("pyproject.toml").read_text()).get("tool", {}).get("mutmut", {})
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *extra.get("pytest_add_cli_args", []), *tests],
                         capture_output=True, text=True, check=False).stdout
    return [t for t in (line.strip() for line in out.splitlines()) if "::" in t]


def run(names: list[str], tests: list[str], *, out: Path, limit: int, selected: bool = False) -> None:
    """Run each mutant in this process (from ``mutants/``) and append its verdict to ``out``."""
    import pytest

    sys.path.insert(0, "src")
    signal.signal(signal.SIGALRM, _timeout)
    stats = json.loads(Path("mutmut-stats.json").read_text()) if selected else None
    collected = _collected(tests) if selected else []
    with out.open("a") as fh:
        for name in names:
            chosen = _reaching(name, stats=stats, collected=collected) if selected else tests
            if not chosen:
                fh.write(f"{name} no-tests\n")
                continue
            os.environ["MUTANT_UNDER_TEST"] = name
            _reset_shared_state()
            _EXPIRED.clear()
            signal.alarm(limit)
            failed = _Failed()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *chosen], plugins=[failed])
            signal.alarm(0)
            # 1: a test failed; 0: none did; 2-5 (interrupted, internal or usage error, nothing collected): no verdict
            verdict = ("timeout-or-error-alarm" if _EXPIRED
                       else {0: "survived", 1: "killed"}.get(int(rc), f"timeout-or-error-{int(rc)}"))
            fh.write(f"{name} {verdict}{' ' + failed.first if failed.first else ''}\n")
            fh.flush()


def main() -> None:
    """Split the names over ``--workers`` processes (this script again, with ``--part``) and wait for them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", help="file with one mutant name per line")
    ap.add_argument("tests", nargs="+", help="test files, relative to the project root")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="rerun.txt")
    ap.add_argument("--limit", type=int, default=60, help="seconds per mutant; past it, no verdict")
    ap.add_argument("--selected", action="store_true",
                    help="run only the tests mutmut recorded as reaching each mutant's function")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a worker's own share of the names
    args = ap.parse_args()
    root = Path.cwd()
    if not (root / "mutants" / "src").is_dir():
        sys.exit("No mutants/src here: run `mutmut run` from the project root first.")
    out = (root / args.out).resolve()
    names = [n.strip() for n in Path(args.names).read_text().splitlines() if n.strip()]
    if args.part is not None:  # a worker: its share, run in mutants/ where the mutated sources are
        i, k = map(int, args.part.split("/"))
        os.chdir(root / "mutants")
        run(names[i::k], args.tests, out=out, limit=args.limit, selected=args.selected)
        return
    cmd = [sys.executable, __file__, str(Path(args.names).resolve()), *args.tests, "--out", str(out),
           "--limit", str(args.limit), *(["--selected"] if args.selected else [])]
    workers = [subprocess.Popen([*cmd, "--part", f"{i}/{args.workers}"], env=os.environ | {"OMP_NUM_THREADS": "1"})
               for i in range(args.workers)]
    if any(w.wait() for w in workers):
        sys.exit("A worker failed; the verdicts so far are in " + str(out))
    print(f"{len(names)} mutants: verdicts in {out}")


if __name__ == "__main__":
    main()
