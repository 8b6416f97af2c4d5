"""Sphinx configuration of the sklearn-piaa documentation.

Build (from the repository root): ``python -m sphinx -W -b html docs docs/_build/html``;
the site's entry point is ``docs/_build/html/index.html``.
"""

import sys
from pathlib import Path

# The package is installed (pip install -e ".[docs]"); the path is a fallback for a
# plain checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sklearn_piaa  # noqa: E402

project = "sklearn-piaa"
author = "sklearn-piaa developers"
copyright = "sklearn-piaa developers"
release = sklearn_piaa.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json"]
templates_path = ["_templates"]

# -- API reference -------------------------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
# numpydoc renders the Parameters/Attributes/Methods sections; autosummary stubs list
# the members, so numpydoc must not add a second member table.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Doctests ------------------------------------------------------------------------
# `python -m sphinx -b doctest docs docs/_build/doctest` runs the quick start's
# testcode blocks. Docstring examples are already doctests under pytest
# (--doctest-modules), so plain `>>>` blocks are not run a second time here.
doctest_test_doctest_blocks = ""

# -- Markdown pages (docs/algorithm.md) -------------------------------------------------

myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- Example gallery -----------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    # Run every example: CI checks that they work and that each stays fast.
    "plot_gallery": "True",
    "doc_module": ("sklearn_piaa",),
    "backreferences_dir": "generated/backreferences",
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # Gallery scripts seed numpy and torch themselves; the library never seeds globally.
    "reset_modules": ("matplotlib", "seaborn"),
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-piaa {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_static_path = []
html_show_sourcelink = False


def _skip_routing_setters(app, what, name, obj, skip, options):
    # scikit-learn generates set_{fit,score,...}_request on every estimator; their
    # docstrings point into scikit-learn's own docs and say nothing specific here.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


# Every public name (``__all__``) of these modules must appear in api.rst; the build
# warns otherwise, so with -W a new public name without a reference entry fails CI.
_PUBLIC_MODULES = [
    "sklearn_piaa", "sklearn_piaa.datasets", "sklearn_piaa.evaluation",
    "sklearn_piaa.metrics", "sklearn_piaa.model_selection", "sklearn_piaa.report",
    "sklearn_piaa.plotting", "sklearn_piaa.meta", "sklearn_piaa.nn",
    "sklearn_piaa.baselines", "sklearn_piaa.cli",
]


def _api_entries(path):
    """Dotted names listed in the autosummary blocks of ``path``."""
    module, in_summary, entries = None, False, []
    for line in Path(path).read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module, in_summary = line.split("::")[1].strip(), False
        elif line.startswith(".. autosummary::"):
            in_summary = True
        elif in_summary and line.strip() and not line.startswith("   "):
            in_summary = False
        elif in_summary and line.strip() and not line.strip().startswith(":"):
            entries.append(f"{module}.{line.strip()}")
    return entries


def _check_api_complete(app):
    import importlib

    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    documented = set()
    for entry in _api_entries(Path(app.srcdir) / "api.rst"):
        module, _, name = entry.rpartition(".")
        try:
            documented.add(id(getattr(importlib.import_module(module), name)))
        except (ImportError, AttributeError):
            pass  # autosummary reports names that do not resolve
    for module_name in _PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in getattr(module, "__all__", []):
            if id(getattr(module, name)) not in documented:
                logger.warning(f"public name {module_name}.{name} is missing from "
                               "docs/api.rst")


def setup(app):
    app.connect("autodoc-skip-member", _skip_routing_setters)
    app.connect("builder-inited", _check_api_complete)
