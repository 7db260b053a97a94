"""The public functions of ``latentforge.sliced`` and ``latentforge.evaluate`` carry numpydoc
sections (Parameters, Returns, Examples, as POT's ``ot/sliced.py`` does), and their examples run."""

from __future__ import annotations

import doctest
import inspect

import pytest

import latentforge.evaluate as evaluate
import latentforge.sliced as sliced

PUBLIC = [(pkg.__name__, name) for pkg in (sliced, evaluate) for name in pkg.__all__
          if callable(getattr(pkg, name)) and not inspect.isclass(getattr(pkg, name))]


def _doc(module: str, name: str) -> str:
    pkg = sliced if module == sliced.__name__ else evaluate
    return inspect.getdoc(getattr(pkg, name)) or ""


def test_the_list_is_not_empty():
    assert len([p for p in PUBLIC if p[0] == sliced.__name__]) >= 10
    assert len([p for p in PUBLIC if p[0] == evaluate.__name__]) >= 25


@pytest.mark.parametrize("module,name", PUBLIC)
def test_numpydoc_sections(module, name):
    doc = _doc(module, name)
    for section in ("Parameters", "Returns", "Examples"):
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, f"{module}.{name} lacks a {section} section"


@pytest.mark.parametrize("module,name", PUBLIC)
def test_examples_run(module, name):
    pkg = sliced if module == sliced.__name__ else evaluate
    obj = getattr(pkg, name)
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(obj, name, globs={"np": __import__("numpy"), module.rsplit(".", 1)[-1]: pkg})
    examples = [t for t in tests if t.examples]
    assert examples, f"{module}.{name} has no runnable example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in examples:
        runner.run(t)
    assert runner.failures == 0, f"{module}.{name}: {runner.failures} example(s) failed"


@pytest.mark.parametrize("name", ["Autoencoder", "AnomalyDetector"])
def test_estimators_list_their_fitted_attributes_and_their_example_runs(name):
    """As scikit-learn's PCA does: an Attributes section naming every fitted attribute."""
    import numpy as np

    import latentforge

    cls = getattr(latentforge, name)
    doc = inspect.getdoc(cls)
    for section in ("Parameters", "Attributes", "Examples"):
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, section
    attributes = doc.split("\nAttributes\n", 1)[1].split("\nExamples\n", 1)[0]
    X = np.random.default_rng(0).normal(size=(60, 4))
    fitted = cls("ae", latent_dim=2, epochs=1, hidden=(8,), verbose=False).fit(X)
    for attr in (k for k in vars(fitted) if k.endswith("_") and not k.startswith("_")):
        assert attr in attributes, f"{name}.{attr} is not documented under Attributes"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder(recurse=False).find(cls, name, globs={}):
        runner.run(t)
    assert runner.tries > 0 and runner.failures == 0
