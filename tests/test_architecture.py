"""The dependency rule of docs/architecture.md, checked against the code: the table there says which apps each app
may import; every import in every module (including those inside functions) must follow it; no module import
cycle; services never import tasks; every model is defined in its own app."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from django.apps import apps as django_apps

from tests.helpers import porte_apps

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# The site's URL map includes each app's URLs, so it names them all (said in the document).
URL_MAP = ROOT / "portal" / "urls.py"
ROW = re.compile(r"^\| `(\w+)` \| .* \| (.*) \|$")


def _rule() -> dict[str, set[str]]:
    rule = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rule[match[1]] = set(re.findall(r"`(\w+)`", match[2]))
    return rule


def _local_apps() -> list[str]:
    return porte_apps()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for app in _local_apps()
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module or module.name, imported inside a function or class) for every absolute import."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name, id(node) not in top) for name in names]
    return found


def test_the_document_names_every_app_and_only_apps():
    rule = _rule()
    assert set(rule) == set(_local_apps()), "docs/architecture.md's table and INSTALLED_APPS differ"
    for app, allowed in rule.items():
        assert allowed <= set(rule), f"{app} may import an app that does not exist: {allowed - set(rule)}"


def test_the_rule_is_a_one_way_order():
    """Read down the table: an app may import only apps above it, so no two apps can depend on each other."""
    rule = _rule()
    order = list(rule)
    for app, allowed in rule.items():
        below = {other for other in allowed if order.index(other) >= order.index(app)}
        assert not below, f"{app} may import {below}, which are not above it in the table"


def test_every_import_follows_the_rule():
    rule, apps = _rule(), set(_local_apps())
    broken = []
    for module, path in _modules().items():
        if path == URL_MAP:
            continue
        app = module.split(".")[0]
        for line, name, _ in _imports(path):
            target = name.split(".")[0]
            if target in apps and target != app and target not in rule[app]:
                broken.append(
                    f"{path.relative_to(ROOT)}:{line} imports {name} ({app} may not import {target})"
                )
    assert not broken, "\n".join(broken)


def test_no_module_import_cycle_even_through_function_level_imports():
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    late = []
    for module, path in modules.items():
        for line, name, nested in _imports(path):
            target = name if name in modules else name.rpartition(".")[0]
            if target in modules and target != module:
                graph[module].add(target)
                if nested and path.name != "apps.py":
                    late.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
    assert not late, "imports belong at module level (only AppConfig.ready imports late):\n" + "\n".join(late)

    # Depth-first search for a back edge; report the cycle it closes.
    state: dict[str, int] = {}
    path_stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path_stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path_stack[path_stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path_stack.pop()
        return None

    for module in sorted(modules):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_services_never_import_tasks():
    """Services queue tasks by name through portal.queue; only tasks import services."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in _modules().items()
        if ".services" in module or module.endswith("services")
        for line, name, _ in _imports(path)
        if re.search(r"(^|\.)tasks(\.|$)", name)
    ]
    assert not offenders, "\n".join(offenders)


def test_only_the_gateway_imports_boto3_or_botocore():
    gateway = ROOT / "portal" / "aws.py"
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules().values()
        if path != gateway
        for line, name, _ in _imports(path)
        if name.split(".")[0] in ("boto3", "botocore")
    ]
    assert not offenders, "\n".join(offenders)


def test_every_model_lives_in_its_own_app():
    for model in django_apps.get_models():
        app = model._meta.app_config
        if app.name in _local_apps():
            assert model.__module__ == f"{app.name}.models", (
                f"{model.__name__} is defined in {model.__module__}, not {app.name}.models"
            )


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The checks above can fail: a grants module importing approvals breaks the rule as the table says."""
    rule = _rule()
    assert "approvals" not in rule["grants"] and "grants" in rule["approvals"]
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from approvals import services\n")
    assert _imports(probe) == [(2, "approvals", True), (2, "approvals.services", True)]
