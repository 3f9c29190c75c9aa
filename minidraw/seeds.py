"""Results over seeds: what a recipe gives, not what its luckiest run gave.

A recipe is run with several seeds (``tools/run_seeds.sh``) and every seed's last checkpoint is measured once
(``tools/recipe_seeds.py measure``), into ``minidraw/recipes/seeds/NAME.json``. This module reads those rows and
reports them: :func:`summary` gives the mean and standard deviation of one number over seeds, :func:`table` sets
recipes side by side (mean ± sd), :func:`seed_table` shows one recipe's seeds row by row, and :func:`shortfalls`
checks every seed against targets. The standard deviation is the sample one (``ddof=1``): with three seeds it is
a rough guide to how far the next seed may land, not a confidence interval.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Optional

SEEDS_DIR = Path(__file__).resolve().parent / "recipes" / "seeds"

# the numbers the comparison reports: (row key, title, format)
COLUMNS = (("fidelity_seen", "seen %", "{:.1f}"), ("fidelity_heldout_val", "validation %", "{:.1f}"),
           ("fidelity_heldout", "held out %", "{:.1f}"), ("worst_heldout_template", "worst held-out template %",
                                                          "{:.1f}"), ("test_bound", "test −L (nats)", "{:.1f}"))


def rows(name: str, seeds_dir: Optional[Path] = None) -> list[dict]:
    """The measured seeds of recipe ``name``, one dict each, with ``worst_heldout_template`` added."""
    path = Path(seeds_dir or SEEDS_DIR) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no measured seeds of {name!r} ({path}); run tools/run_seeds.sh and then "
                                f"`python tools/recipe_seeds.py measure {name} --runs RUNS`")
    out = json.loads(path.read_text())["rows"]
    for r in out:
        by = r.get("fidelity_heldout_by_template")
        if by:
            r["worst_heldout_template"] = min(by.values())
    return out


def splits(name: str, seeds_dir: Optional[Path] = None) -> dict[str, str]:
    """Which compositions each split of the measurement held, in words."""
    return json.loads((Path(seeds_dir or SEEDS_DIR) / f"{name}.json").read_text())["splits"]


def summary(values: Iterable[float]) -> tuple[float, float, int]:
    """``(mean, sample standard deviation, n)``; the deviation is NaN for one value."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("no values to summarise")
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return mean, sd, len(v)


def _cell(values: list[float], fmt: str) -> str:
    mean, sd, n = summary(values)
    return fmt.format(mean) + ("" if n == 1 else " ± " + fmt.format(sd))


def table(names: Iterable[str], columns=COLUMNS, seeds_dir: Optional[Path] = None,
          labels: Optional[dict[str, str]] = None) -> str:
    """Recipes side by side as a Markdown table: the mean ± sd over each recipe's seeds, and how many seeds."""
    cols = list(columns)
    lines = ["| recipe | seeds | " + " | ".join(t for _, t, _ in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name in names:
        rs = rows(name, seeds_dir)
        cells = [_cell([r[k] for r in rs if k in r], f) if any(k in r for r in rs) else "–" for k, _, f in cols]
        lines.append(f"| {(labels or {}).get(name, name)} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_table(name: str, seeds_dir: Optional[Path] = None) -> str:
    """One recipe's seeds, row by row, with the held-out split per template, then their mean ± sd."""
    rs = rows(name, seeds_dir)
    templates = list(rs[0].get("fidelity_heldout_by_template", {}))
    cols = [c for c in COLUMNS if c[0] != "worst_heldout_template"]
    head = [t for _, t, _ in cols] + [f"held out: {t} %" for t in templates]
    lines = ["| seed | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for r in rs + [None]:
        get = (lambda k: [x[k] for x in rs if k in x]) if r is None else (lambda k: [r[k]] if k in r else [])
        by = (lambda t: [x["fidelity_heldout_by_template"][t] for x in rs]) if r is None else \
            (lambda t: [r["fidelity_heldout_by_template"][t]])
        cells = [_cell(get(k), f) if get(k) else "–" for k, _, f in cols] + [_cell(by(t), "{:.1f}") for t in templates]
        lines.append(f"| {'mean ± sd' if r is None else r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def shortfalls(name: str, seen: float = 90.0, heldout: float = 85.0, template: float = 75.0,
               seeds_dir: Optional[Path] = None) -> list[str]:
    """Each seed's misses of the targets (seen, held out, every held-out template), in words; empty: all met."""
    out = []
    for r in rows(name, seeds_dir):
        for key, floor, what in (("fidelity_seen", seen, "seen"), ("fidelity_heldout", heldout, "held out")):
            if r[key] < floor:
                out.append(f"seed {r['seed']}: {what} {r[key]:.1f} % < {floor:g} %")
        for t, v in r.get("fidelity_heldout_by_template", {}).items():
            if v < template:
                out.append(f"seed {r['seed']}: held-out {t!r} {v:.1f} % < {template:g} %")
    return out
