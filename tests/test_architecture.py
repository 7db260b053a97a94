"""The layout stays true: the import graph of ``src/latentforge`` follows the declared stage order.

Every import of the package (module level, inside functions and under ``TYPE_CHECKING`` alike) is
read with ``ast``. A module may import modules of its own stage package or of a strictly lower
stage, never upward; there is no import cycle between modules; no module imports a private name
(``_x``) of another module or a private module of another package; nothing imports the
deprecated shims, which only re-export moved names for one release.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "latentforge"

# Lower number = lower stage. See docs/architecture.md for the diagram.
STAGES: dict[str, int] = {
    "_version": 0, "errors": 0,                                   # foundations
    "_deprecation": 1, "fsutil": 1, "validation": 1,
    "config": 2,                                                  # TrainConfig, every default, the config reader
    "sliced": 3, "artifacts": 3, "report": 3, "data": 3,          # libraries and the data layer
    "tracking": 3,                                                # optional MLflow logging
    "evaluate": 4,                                                # metrics (use sliced)
    "models": 5,
    "train": 6,
    "estimator": 7,
    "transform": 8,                                               # post-training tools on fitted estimators
    "workflows": 9,                                               # evaluation, compare, demo
    "sae": 9,                                                     # sparse autoencoders on activations
    "cli": 10,
    "__root__": 11,                                               # latentforge/__init__.py re-exports the API
    "__main__": 12,                                               # python -m latentforge → the CLI
}
# Old import paths kept for one release; each warns and re-exports, and nothing inside imports them.
DEPRECATED_SHIMS = {
    "latentforge.api", "latentforge.anomaly", "latentforge.compare", "latentforge.compare_report",
    "latentforge.demo", "latentforge.models.latent_sampler", "latentforge.models.sghmc",
    "latentforge.sliced.estimators", "latentforge.transform.similarity",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[tuple[str, str | None]]:
    """(module, imported name or None) pairs inside latentforge for one import statement."""
    out: list[tuple[str, str | None]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "latentforge":
                out.append((alias.name, None))
        return out
    if node.level:
        base = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    if module.split(".")[0] != "latentforge":
        return out
    for alias in node.names:
        sub = f"{module}.{alias.name}"
        out.append((sub, None) if sub in MODULES else (module, alias.name))
    return out


def _imports() -> dict[str, list[tuple[str, str | None, int]]]:
    graph: dict[str, list[tuple[str, str | None, int]]] = {}
    for name, path in MODULES.items():
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges += [(m, n, node.lineno) for m, n in _resolve(name, node)]
        graph[name] = edges
    return graph


GRAPH = _imports()


def _stage(module: str) -> str:
    parts = module.split(".")
    if module in DEPRECATED_SHIMS and len(parts) == 2:  # top-level shims sit with the package root
        return "__root__"
    return "__root__" if len(parts) == 1 else parts[1]


def test_every_module_belongs_to_a_declared_stage():
    unknown = sorted({_stage(m) for m in MODULES if m not in DEPRECATED_SHIMS} - set(STAGES))
    assert not unknown, f"modules outside the declared stages (add them to STAGES and docs/architecture.md): {unknown}"


def test_nothing_imports_upward():
    bad = []
    for importer, edges in GRAPH.items():
        if importer in DEPRECATED_SHIMS:
            continue
        for target, _, line in edges:
            a, b = _stage(importer), _stage(target)
            if a != b and STAGES[b] >= STAGES[a]:
                bad.append(f"{importer}:{line} imports {target} ({a} → {b})")
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_no_import_cycles():
    edges = {m: sorted({t for t, _, _ in e if t in MODULES and t != m}) for m, e in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_no_private_names_across_modules():
    bad = []
    for importer, edges in GRAPH.items():
        for target, name, line in edges:
            same_package = target.rsplit(".", 1)[0] == importer.rsplit(".", 1)[0] or target.startswith(importer + ".")
            last = target.rsplit(".", 1)[-1]
            if last.startswith("_") and not last.startswith("__") and last not in ("_version", "_deprecation") and not same_package:
                bad.append(f"{importer}:{line} imports the private module {target}")
            if name and name.startswith("_") and not name.startswith("__"):
                bad.append(f"{importer}:{line} imports the private name {name} of {target}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_deprecated_shims():
    bad = [f"{m}:{line} imports {t}" for m, e in GRAPH.items() if m not in DEPRECATED_SHIMS
           for t, _, line in e if t in DEPRECATED_SHIMS]
    assert not bad, "\n".join(bad)


def test_models_never_import_the_stages_above_them():
    above = {"train", "estimator", "transform", "workflows", "cli"}
    bad = [f"{m} imports {t}" for m, e in GRAPH.items() if _stage(m) == "models" and m not in DEPRECATED_SHIMS
           for t, _, _ in e if _stage(t) in above]
    assert not bad


@pytest.mark.parametrize("shim", sorted(DEPRECATED_SHIMS))
def test_old_import_paths_still_work_with_a_deprecation_warning(shim):
    import sys

    sys.modules.pop(shim, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(shim)
    assert any(issubclass(w.category, DeprecationWarning) and shim in str(w.message) for w in caught), shim
    public = [n for n in getattr(module, "__all__", []) if not n.startswith("_")]
    assert public, f"{shim} re-exports nothing"
    for n in public:
        assert getattr(module, n) is not None


def test_the_graph_reader_sees_real_edges():
    """Guard against a reader that silently finds nothing: known edges must be present."""
    assert any(t == "latentforge.models.base" for t, _, _ in GRAPH["latentforge.models.ae"])
    assert any(_stage(t) == "train" for t, _, _ in GRAPH["latentforge.estimator.autoencoder"])


def test_model_capabilities_are_declared_not_probed():
    """No ``hasattr(obj, "<a BaseAutoencoder attribute>")`` anywhere: capabilities live on the class."""
    from latentforge.models import BaseAutoencoder

    declared = {n for n in dir(BaseAutoencoder) if not n.startswith("__")} | {"fit_weights", "codebook_size"}
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in declared):
                bad.append(f"{name}:{node.lineno} probes {node.args[1].value!r}")
    assert not bad, "\n".join(bad)


def test_readme_code_layout_matches_the_tree():
    import re

    readme = (ROOT.parents[1] / "README.md").read_text()
    block = readme.split("## Code layout", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^\s+([a-z_]+)(?:/|\.py)\s", block, flags=re.M))
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    public_stages = {s for s in STAGES if not s.startswith("_")} - {"errors", "validation", "fsutil"}
    assert listed == public_stages, (sorted(listed ^ public_stages))
    assert packages <= listed
    architecture = (ROOT.parents[1] / "docs" / "architecture.md").read_text()
    for stage in public_stages:
        assert stage in architecture, stage
