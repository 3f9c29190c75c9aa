"""Results over seeds: the mean ± sd reported is numpy's, every seed is in the table, and targets are per seed."""
import json

import numpy as np
import pytest

from minidraw import seeds


def _write(tmp_path, name, values):
    rows = [{"seed": s, "fidelity_seen": seen, "fidelity_heldout": held, "fidelity_heldout_val": val,
             "test_bound": 200.0 + s, "fidelity_heldout_by_template": {"left of": held, "top of": top}}
            for s, (seen, held, val, top) in enumerate(values)]
    (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "splits": {"heldout": "held-out ..."},
                                                       "rows": rows}))


def test_summary_is_the_mean_and_the_sample_deviation():
    x = [91.2, 88.0, 95.5]
    mean, sd, n = seeds.summary(x)
    assert n == 3 and mean == pytest.approx(np.mean(x)) and sd == pytest.approx(np.std(x, ddof=1))
    assert np.isnan(seeds.summary([4.0])[1])
    with pytest.raises(ValueError, match="no values"):
        seeds.summary([])


def test_tables_report_every_seed_and_their_spread(tmp_path):
    _write(tmp_path, "ours", [(95.0, 90.0, 88.0, 80.0), (93.0, 86.0, 84.0, 70.0), (91.0, 82.0, 80.0, 76.0)])
    _write(tmp_path, "paper", [(90.0, 40.0, 42.0, 10.0)])
    text = seeds.table(["paper", "ours"], seeds_dir=tmp_path)
    assert "| ours | 3 | 93.0 ± 2.0 | 84.0 ± 4.0 | 86.0 ± 4.0 | 75.3 ± 5.0 | 201.0 ± 1.0 |" in text
    assert "| paper | 1 | 90.0 | 42.0 | 40.0 | 10.0 | 200.0 |" in text           # one seed: no deviation to show
    rows = seeds.seed_table("ours", seeds_dir=tmp_path).splitlines()
    assert len(rows) == 2 + 3 + 1 and rows[-1].startswith("| mean ± sd | 93.0 ± 2.0")
    assert "held out: top of %" in rows[0]
    # targets are checked seed by seed: a good mean does not hide a bad seed
    missed = seeds.shortfalls("ours", seeds_dir=tmp_path)
    assert missed == ["seed 1: held-out 'top of' 70.0 % < 75 %", "seed 2: held out 82.0 % < 85 %"]


def test_an_unmeasured_recipe_says_how_to_measure_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe_seeds.py measure nothing"):
        seeds.rows("nothing", seeds_dir=tmp_path)
