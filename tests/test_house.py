"""The shape of the code: commands stand side by side on the library, and the command list lives in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cifake import commands
from cifake.cli import build_parser

PACKAGE = Path(commands.__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the cifake modules ``path`` imports (``from .x import y``, ``from ..x import y``, ``import cifake.x``)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # ('cifake',) or ('cifake', 'commands')
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from . import predict` names a module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "cifake" or m.startswith("cifake.")}


COMMAND_FILES = {name: PACKAGE / "commands" / f"{name}.py" for name in commands.NAMES}


def test_every_command_has_one_module_and_every_module_is_listed():
    on_disk = {p.stem for p in (PACKAGE / "commands").glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == set(commands.NAMES)
    for name in commands.NAMES:
        module = commands.load(name)
        for attr in ("HELP", "DESCRIPTION", "EXAMPLE", "add_arguments", "run"):
            assert hasattr(module, attr), f"commands/{name}.py has no {attr}"


@pytest.mark.parametrize("name", commands.NAMES)
def test_no_command_module_imports_another_command(name):
    others = {f"cifake.commands.{n}" for n in commands.NAMES if n != name}
    leaks = imported_modules(COMMAND_FILES[name]) & others
    assert not leaks, f"commands/{name}.py imports {sorted(leaks)}: share code through the library instead"


def test_the_library_never_imports_a_command():
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py") or path.parent.name == "commands":
            continue
        leaks = {m for m in imported_modules(path) if m.startswith("cifake.commands")}
        assert not leaks, f"{path.name} imports {sorted(leaks)}"


def test_the_walk_sees_relative_imports(tmp_path):
    """The checker itself: a command importing a sibling command is caught."""
    fake = PACKAGE / "commands" / "_walk_probe.py"
    try:
        fake.write_text("from .predict import run\nfrom ..data import images\n")
        assert {"cifake.commands.predict", "cifake.data.images"} <= imported_modules(fake)
    finally:
        fake.unlink()


def test_the_parser_offers_exactly_the_listed_commands():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command")
    assert tuple(subs.choices) == commands.NAMES


def test_library_errors_name_parameters_and_the_cli_names_flags(tmp_path, capsys):
    """A Python caller is told about max_megapixels; the command line user about --max-megapixels."""
    from cifake.base import limits
    from cifake.base.errors import UserError
    from cifake.cli import main
    from cifake.tasks.evaluate import evaluate

    with pytest.raises(UserError) as caught:
        limits.set_max_megapixels(1e308)
    assert str(caught.value).startswith("max_megapixels: got 1e+308") and "--" not in str(caught.value)
    assert caught.value.for_cli().startswith("--max-megapixels: got 1e+308")
    with pytest.raises(UserError, match=r"^calibrate only works on split val"):
        evaluate(tmp_path / "m.keras", split="test", calibrate=True)
    assert main(["evaluate", str(tmp_path / "m.keras"), "--split", "test", "--calibrate"]) == 2
    assert "--calibrate only works on --split val" in capsys.readouterr().err


# --- private Keras/TensorFlow names live in compat.py; the library talks through logging ------------

PRIVATE_MODULES = ("keras.src", "tensorflow.python", "tensorflow.compiler", "tensorflow.core", "tensorflow.lite.python")


def private_uses(path: Path) -> list[str]:
    """Private names ``path`` uses: imports of a library's private modules, and ``x._name``
    attribute reads on anything but ``self``, ``cls`` or ``super()``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            v = node.value
            if isinstance(v, ast.Name) and v.id in ("self", "cls"):
                continue
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                continue
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.name}:{node.lineno} import {m}" for m in names if m.startswith(PRIVATE_MODULES)]
    return found


def test_private_keras_and_tensorflow_names_are_used_in_compat_only():
    compat = PACKAGE / "base" / "compat.py"
    assert private_uses(compat), "the checker finds nothing even where the private names are"
    leaks = [u for p in sorted(PACKAGE.rglob("*.py")) if p != compat for u in private_uses(p)]
    assert not leaks, f"private names outside cifake/base/compat.py: {leaks}"


def test_the_library_has_no_print_outside_the_command_line():
    """The CLI (cli.py, commands/) prints results; the library logs (cifake/base/logs.py)."""
    prints = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py" or "commands" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                prints.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not prints, f"print() in the library: {prints}"


def test_a_python_api_call_prints_nothing_and_logging_shows_it(tmp_path, capfd):
    """cifake.train and Detector.predict write nothing to stdout or stderr unless the caller
    configures logging; with a handler on the ``cifake`` logger, the run's lines arrive there."""
    import logging

    import cifake
    from cifake.base import logs

    from .conftest import make_dataset

    data = make_dataset(tmp_path / "data", per_class=60)
    cfg = cifake.load_config(
        None, [f"data.dir={data}", f"train.runs_dir={tmp_path / 'runs'}", "train.epochs=1", "data.val_fraction=0.2"]
    )
    cfg.model.filters, cfg.train.tensorboard = [8], False
    logs.teardown()  # the library's default, as a Python user has it
    capfd.readouterr()
    run = cifake.train(cfg)
    p = cifake.load_detector(run / "best.keras").predict(str(data / "train" / "FAKE"))
    out, err = capfd.readouterr()
    assert len(p) == 60 and out == "" and err == "", (out[-500:], err[-500:])

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("cifake").addHandler(handler)
    logging.getLogger("cifake").setLevel(logging.INFO)
    try:
        cifake.train(cfg)
    finally:
        logging.getLogger("cifake").removeHandler(handler)
        logs.teardown()
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("epoch   1/1") for m in messages) and any(m.startswith("run directory:") for m in messages)
    # the two end-of-training accuracies say which is which (issue: numbers that contradict each other)
    assert any("(during training, " in m and "best.keras re-scored in float32: val accuracy" in m for m in messages)
    assert capfd.readouterr().out == ""


# --- layers: imports run down, never up, never in a circle ------------------------------------------

LAYERS = ("base", "config", "data", "models", "training", "tasks", "commands", "top")  # lowest first


def layer_of(module: str) -> str:
    """The layer of a cifake module name: its folder, or 'config', or 'top' (cli, __init__, __main__)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    return "config" if parts[1:2] == ["config"] else "top"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def import_graph() -> dict[str, set[str]]:
    """Every cifake module -> the cifake modules it imports (top level or inside functions), packages
    resolved to the module a name names where it is one."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for m in imported_modules(path):
            while m not in modules and "." in m:
                m = m.rpartition(".")[0]  # `from .files import atomic_open`: the module, not the name
            if m in modules and m != name:
                targets.add(m)
        graph[name] = targets
    return graph


def test_every_import_runs_down_the_layers():
    up = []
    for name, targets in import_graph().items():
        for t in targets:
            if t == "cifake":
                continue  # the package's __init__ (__version__): it imports nothing at import time
            if LAYERS.index(layer_of(t)) > LAYERS.index(layer_of(name)):
                up.append(f"{name} ({layer_of(name)}) imports {t} ({layer_of(t)})")
    assert not up, "imports running up a layer:\n" + "\n".join(sorted(up))


def test_no_import_circle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        state[node] = 1
        for t in graph[node]:
            if t == "cifake":
                continue
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(t) :], t]))
            if t not in state:
                visit(t, [*path, t])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_layer_check_sees_an_upward_import():
    probe = PACKAGE / "base" / "_layer_probe.py"
    try:
        probe.write_text("from ..training import rundir\n")
        with pytest.raises(AssertionError, match=r"_layer_probe \(base\) imports cifake\.training\.rundir"):
            test_every_import_runs_down_the_layers()
    finally:
        probe.unlink()


def test_architecture_md_names_every_module():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
        and p.parent.name != "commands"
        and f"`{p.relative_to(PACKAGE).as_posix()}`" not in text
    ]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_api_names_stay_functions_after_their_modules_are_imported():
    import cifake
    import cifake.tasks.evaluate
    import cifake.training.train

    assert callable(cifake.train) and not isinstance(cifake.train, type(cifake))
    assert callable(cifake.evaluate) and not isinstance(cifake.evaluate, type(cifake))
