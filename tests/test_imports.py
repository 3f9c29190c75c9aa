"""The package has no import cycles: each module imports only what sits below it."""
import subprocess
import sys

import pytest


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in sys.modules if m.startswith('minidraw')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module,never", [
    ("minidraw.draw", {"minidraw.baselines", "minidraw.configs", "minidraw.train"}),
    ("minidraw.baselines", {"minidraw.draw", "minidraw.train"}),
    ("minidraw.outputs", {"minidraw.draw", "minidraw.baselines"}),
    ("minidraw.evaluate", {"minidraw.train"}),
    ("minidraw.captioner", {"minidraw.scoring", "minidraw.cycle", "minidraw.evaluate", "minidraw.train"}),
    ("minidraw.measures", {"minidraw.evaluate", "minidraw.scoring", "minidraw.cycle", "minidraw.train"}),
    ("minidraw.scoring", {"minidraw.evaluate", "minidraw.cycle", "minidraw.train"}),
    ("minidraw.cycle", {"minidraw.evaluate", "minidraw.train"}),
    ("minidraw.checkpoint", {"minidraw.train", "minidraw.evaluate"}),
    ("minidraw.data.select", {"minidraw.train", "minidraw.evaluate"}),
    ("minidraw.fidelity", {"minidraw.train", "minidraw.evaluate", "minidraw.draw"}),
    ("minidraw.configs", {"minidraw.train", "minidraw.evaluate"}),
    ("minidraw.sample", {"minidraw.train", "minidraw.cli"}),
    ("minidraw.train", {"minidraw.cli", "minidraw.evaluate"}),
])
def test_a_module_does_not_import_the_modules_above_it(module, never):
    assert not _modules_after(f"import {module}") & never


def test_moved_names_are_still_importable_from_their_old_modules():
    from minidraw import draw, fidelity, train
    from minidraw.checkpoint import load, save
    from minidraw.configs import build
    from minidraw.data.select import data_for, mnist_binarized
    from minidraw.outputs import ConfigDict, DrawOutput, Generated
    assert (draw.build, draw.DrawOutput, draw.Generated, draw.ConfigDict) == (build, DrawOutput, Generated, ConfigDict)
    assert (train.load, train.save, train.mnist_binarized) == (load, save, mnist_binarized)
    assert callable(train.data_for) and train.data_for is not data_for       # takes a TrainConfig, as before
    for name in ("digit_classifier", "shape_classifier", "mnist_fidelity", "shapes_fidelity", "mnist_oracle",
                 "shapes_oracle", "FidelityResult"):
        assert hasattr(fidelity, name), name
    for name in ("fit", "TrainConfig", "caption_batches", "fixed_batches", "dataset_bound", "load", "run",
                 "load_config", "recipe", "recipes", "RECIPES", "Batches", "mnist_binarized", "read_metrics"):
        assert hasattr(train, name), name
    from minidraw import configs
    from minidraw.data import batches
    assert (train.TrainConfig, train.load_config, train.Batches) == (configs.TrainConfig, configs.load_config,
                                                                     batches.Batches)


def test_no_private_name_is_re_exported_and_the_captioner_holds_no_scoring():
    """``minidraw.fidelity`` re-exports its submodules' public names only; scoring captions lives in
    ``minidraw.scoring``, not beside the model in ``minidraw.captioner``."""
    from minidraw import captioner, fidelity
    assert not [n for n in vars(fidelity) if n.startswith("_") and not n.endswith("__")]
    assert set(fidelity.__all__) <= set(vars(fidelity))
    for name in ("accuracy", "accuracy_evaluation", "agreement", "facts_for"):
        assert not hasattr(captioner, name), name


def test_only_the_cli_package_parses_command_lines():
    """One CLI (``minidraw.cli``) registers every subcommand; the library modules expose functions."""
    import ast
    from pathlib import Path
    import minidraw
    root = Path(minidraw.__file__).parent
    parsing = []
    for path in root.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "argparse" for n in names):
                parsing.append(str(path.relative_to(root)))
    assert not parsing, f"argparse outside minidraw/cli: {parsing}"
    from minidraw import cli
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "sample", "evaluate", "prepare", "caption"}
