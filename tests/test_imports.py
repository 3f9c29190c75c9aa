"""The package is built bottom-up: the import graph, read from the source, has no cycle; every module has one job
and at most 400 lines; one CLI parses command lines; one registry answers which kind a model is."""
import ast
from pathlib import Path

import minidraw

ROOT = Path(minidraw.__file__).parent
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = ["minidraw", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: the package modules it imports}``, from every import statement in the source — at the top and
    inside functions alike. ``from . import x`` counts as importing the submodule ``x`` where there is one."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:             # minidraw.x.y where y is a name: minidraw.x
                    target = target.rpartition(".")[0]
                if target.startswith("minidraw") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a list of modules (first == last), or ``[]``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_find_cycle_finds_a_cycle_and_no_false_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_has_edges_and_no_cycle():
    graph = import_graph()
    assert "minidraw.draw" in graph["minidraw.aligndraw"]                       # the reader sees real edges
    assert "minidraw.aligndraw" in graph["minidraw.compose"]
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_draw_knows_nothing_of_captions_and_the_paper_model_nothing_of_ours():
    graph = import_graph()
    assert not graph["minidraw.draw"] & {"minidraw.text", "minidraw.align", "minidraw.aligndraw", "minidraw.compose"}
    assert "minidraw.compose" not in graph["minidraw.aligndraw"]
    for module in ("draw.py", "outputs.py"):
        text = (ROOT / module).read_text().lower()
        for word in ("what_where", "h_what", "adversary", "where_kl"):
            assert word not in text, (module, word)


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_withdrawn_switches_are_gone():
    withdrawn = ("local_write", "blind_where", "where_values", "what_reset", "what_normalise", "what_share",
                 "where_latent")
    for path in ROOT.rglob("*.py"):
        code = path.read_text()
        for name in withdrawn:
            assert name not in code, (str(path.relative_to(ROOT)), name)
        if path.name != "checkpoint.py":                   # which reads the key of files of earlier releases
            assert "align_values" not in code, str(path.relative_to(ROOT))


def test_one_registry_answers_which_kind():
    """No isinstance chain over model classes outside minidraw.models: every other module asks the registry."""
    classes = {"Draw", "CaptionDraw", "ComposeDraw", "ConditionalVAE", "Sharpener", "LapGan", "Captioner",
               "DrawConfig", "CaptionDrawConfig", "ComposeDrawConfig", "BaselineConfig", "SharpenConfig",
               "LapGanConfig", "CaptionerConfig"}
    found = []
    for path in ROOT.rglob("*.py"):
        if path.name == "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & classes:
                    found.append((str(path.relative_to(ROOT)), node.lineno, sorted(names & classes)))
    assert not found, found


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
    parsing = []
    for path in ROOT.rglob("*.py"):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "argparse" for n in names):
                parsing.append(str(path.relative_to(ROOT)))
    assert not parsing, f"argparse outside minidraw/cli: {parsing}"
    from minidraw import cli
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "sample", "evaluate", "prepare", "caption"}
