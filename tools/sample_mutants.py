"""A mutation score from a random sample of mutmut's mutants, for modules too slow to test every mutant.

Draw a simple random sample from the ``.meta`` files that ``mutmut run`` wrote under ``mutants/``, run it with
``tools/rerun_mutants.py``, then estimate each module's score and the overall one (each module weighted by its
number of mutants) with a 95% interval (normal approximation, with the finite-population correction)::

    python tools/sample_mutants.py draw --under src/genegrad/tl --n 300 --seed 20261206 > sample.txt
    python tools/rerun_mutants.py sample.txt tests/... --selected --out verdicts.txt
    python tools/sample_mutants.py score verdicts.txt --under src/genegrad/tl

The score counts a mutant as detected when a test failed (``killed``); ``survived`` and ``no-tests`` are not
detected. A mutant without a verdict (past its time limit, or an error) is left out of the estimate and counted
on its own line: re-run those with a longer limit before quoting the score. Equivalent mutants count as survivors,
as in mutmut's own score. Later verdict files override earlier ones for the same mutant (re-runs after new tests).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path


def population(under: str) -> dict[str, list[str]]:
    """Every mutant name of the modules below ``under`` (in ``mutants/``), by module."""
    metas = sorted((Path("mutants") / under).rglob("*.py.meta"))
    if not metas:
        sys.exit(f"No mutmut .meta files below mutants/{under}: run `mutmut run` from the project root first.")
    by_module: dict[str, list[str]] = {}
    for meta in metas:
        names = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        if names:
            by_module[_module(names[0])] = names
    return by_module


def _module(name: str) -> str:
    """``genegrad.tl._fate.x_fate_bias__mutmut_3`` -> ``genegrad.tl._fate``."""
    return name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[0]


def draw(by_module: dict[str, list[str]], n: int, seed: int, *, exclude: frozenset[str] = frozenset()) -> list[str]:
    """``n`` mutants drawn at random without replacement, from all modules together, none of ``exclude``."""
    names = [name for module in sorted(by_module) for name in by_module[module] if name not in exclude]
    return random.Random(seed).sample(names, min(n, len(names)))


def read_verdicts(files: list[str]) -> dict[str, str]:
    """Mutant -> verdict (``killed``, ``survived``, ``no-tests``, ``timeout-or-error-N``), later files winning."""
    verdicts: dict[str, str] = {}
    for f in files:
        for line in Path(f).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                verdicts[parts[0]] = parts[1]
    return verdicts


def estimate(verdicts: dict[str, str], by_module: dict[str, list[str]]) -> list[tuple]:
    """Rows (module, mutants, sampled, detected, undecided, score, half-width of the 95% interval), then the total."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # detected, decided, undecided
    for name, verdict in verdicts.items():
        c = counts[_module(name)]
        if verdict.startswith("timeout-or-error"):
            c[2] += 1
        else:
            c[1] += 1
            c[0] += verdict == "killed"
    total = sum(len(by_module[m]) for m in counts if m in by_module)
    rows, mean, var = [], 0.0, 0.0
    for module in sorted(counts):
        if module not in by_module:
            sys.exit(f"{module} is not below the folder given with --under.")
        detected, decided, undecided = counts[module]
        size = len(by_module[module])
        p = detected / decided if decided else float("nan")
        fpc = (size - decided) / (size - 1) if size > 1 else 0.0
        v = p * (1 - p) / max(decided - 1, 1) * fpc if decided else float("nan")
        rows.append((module, size, decided, detected, undecided, p, 1.96 * math.sqrt(v)))
        mean += size / total * p
        var += (size / total) ** 2 * v
    n_dec = sum(c[1] for c in counts.values())
    rows.append(("all", total, n_dec, sum(c[0] for c in counts.values()), sum(c[2] for c in counts.values()),
                 mean, 1.96 * math.sqrt(var)))
    return rows


def main() -> None:
    """``draw`` a sample or ``score`` the verdicts of one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw", help="print a random sample of mutant names")
    d.add_argument("--under", required=True, help="folder of the mutated modules, e.g. src/genegrad/tl")
    d.add_argument("--n", type=int, default=300)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--exclude", nargs="*", default=[],
                   help="verdict files of earlier samples: their mutants are not drawn again (a fresh sample "
                        "measures tests written for the earlier sample's survivors without bias)")
    s = sub.add_parser("score", help="estimate the mutation score from verdict files of rerun_mutants.py")
    s.add_argument("verdicts", nargs="+")
    s.add_argument("--under", required=True)
    args = ap.parse_args()
    by_module = population(args.under)
    if args.cmd == "draw":
        print("\n".join(draw(by_module, args.n, args.seed, exclude=frozenset(read_verdicts(args.exclude)))))
        return
    print("| module | mutants | sampled (with a verdict) | detected | no verdict | score | 95% interval |")
    print("|:--|--:|--:|--:|--:|--:|--:|")
    for module, size, decided, detected, undecided, p, half in estimate(read_verdicts(args.verdicts), by_module):
        print(f"| {module} | {size} | {decided} | {detected} | {undecided} | {p:.3f} | "
              f"{max(p - half, 0):.3f}-{min(p + half, 1):.3f} |")


if __name__ == "__main__":
    main()
