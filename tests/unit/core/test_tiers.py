"""The unit tier (``pytest -m "not slow"``) runs no training: no module under tests/unit
imports or calls ``run_train``, runs ``train.py`` in a subprocess, or uses a fixture that
does (found from the fixtures' bodies: ``tiny_model_folder`` in tests/conftest.py, and any
fixture that depends on one). Tests that need a trained model live in tests/e2e; the
unit tier's model folders come from helpers.models, built without a training run."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.common import REPO

TESTS = REPO / "tests"
UNIT = TESTS / "unit"
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec", "spawn"}
# fixtures the unit tier relies on: each must be built without a training run
UNIT_FIXTURES = {"random_model_folder", "kaldi_model_folder", "model", "kaldi_model", "exported", "onnx_folder"}


def _is_fixture(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(target, ast.Attribute) and target.attr == "fixture") or (
                isinstance(target, ast.Name) and target.id == "fixture"):
            return True
    return False


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _names_train_py(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.endswith("train.py")
               for n in ast.walk(node))


def training_calls(tree: ast.AST) -> list[str]:
    """Where ``tree`` runs train.py: calls of ``run_train``, subprocesses naming train.py,
    imports of ``run_train``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "run_train":
            found.append(f"line {node.lineno}: run_train(...)")
        elif isinstance(node, ast.Call) and _call_name(node) in SUBPROCESS_CALLS and _names_train_py(node):
            found.append(f"line {node.lineno}: a subprocess running train.py")
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "run_train" for alias in node.names):
            found.append(f"line {node.lineno}: imports run_train")
    return found


def _functions(path: Path) -> list[ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _parameters(function: ast.FunctionDef) -> set[str]:
    arguments = function.args
    return {a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs}


def training_fixtures() -> set[str]:
    """Fixtures (in any conftest.py or test module) whose body runs train.py, and every
    fixture that depends on one of them."""
    fixtures = {}
    for path in sorted(TESTS.rglob("*.py")):
        for function in _functions(path):
            if _is_fixture(function):
                fixtures.setdefault(function.name, []).append(
                    (_parameters(function), bool(training_calls(function))))
    training = {name for name, versions in fixtures.items() if any(trains for _, trains in versions)}
    while True:
        more = {name for name, versions in fixtures.items()
                if name not in training and any(params & training for params, _ in versions)}
        if not more:
            return training
        training |= more


def test_the_scan_finds_the_fixture_that_trains_and_none_of_the_unit_tiers():
    training = training_fixtures()
    assert "tiny_model_folder" in training  # the scan sees run_train in a fixture's body
    assert not training & UNIT_FIXTURES, f"built by a training run: {sorted(training & UNIT_FIXTURES)}"


def test_no_unit_test_module_runs_train_py_or_uses_a_fixture_that_does():
    training = training_fixtures()
    problems = []
    for path in sorted(UNIT.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue  # names the fixtures it looks for
        where = path.relative_to(REPO)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        problems += [f"{where}: {found}" for found in training_calls(tree)]
        for function in _functions(path):
            for name in sorted(_parameters(function) & training):
                problems.append(f"{where}:{function.lineno}: {function.name} uses the fixture {name} (train.py: "
                                "move the test to tests/e2e, or build its model with helpers.models)")
        for node in ast.walk(tree):  # request.getfixturevalue("..."), indirect parametrisation
            if isinstance(node, ast.Constant) and node.value in training:
                problems.append(f"{where}:{node.lineno}: names the fixture {node.value!r} (train.py)")
    assert problems == []


def test_no_collected_unit_test_depends_on_a_fixture_that_trains(request):
    """pytest's own view of the items of this session: each unit test's fixture closure."""
    training = training_fixtures()
    unit = [item for item in request.session.items if UNIT in Path(str(item.fspath)).resolve().parents]
    offending = [f"{item.nodeid}: {sorted(set(item.fixturenames) & training)}" for item in unit
                 if set(getattr(item, "fixturenames", ())) & training]
    assert offending == []
