"""Every package of csl_ext defines __all__ once, in one assignment, and
every name in it exists (issue 12.6)."""

import ast
import importlib
from pathlib import Path

import pytest

import csl_ext

PACKAGE_ROOT = Path(csl_ext.__file__).parent
INITS = sorted(PACKAGE_ROOT.rglob("__init__.py"))


def _module_name(init: Path) -> str:
    return ".".join(("csl_ext",) + init.parent.relative_to(PACKAGE_ROOT).parts)


@pytest.mark.parametrize("init", INITS, ids=_module_name)
def test_all_is_defined_once_and_names_exist(init):
    tree = ast.parse(init.read_text())
    writes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "__all__"
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert len(writes) == 1 and isinstance(writes[0], ast.Assign), (
        f"{init}: __all__ must be one assignment, found {len(writes)} writes"
    )
    module = importlib.import_module(_module_name(init))
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{_module_name(init)}.__all__ names {missing}, which it does not define"
    assert len(set(module.__all__)) == len(module.__all__), f"{_module_name(init)}.__all__ repeats a name"
