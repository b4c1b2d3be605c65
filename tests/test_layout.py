"""tests/ mirrors nnocc/: every package of the library has a test folder with tests in it."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_has_its_tests():
    packages = sorted(p.name for p in (ROOT / "nnocc").iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in packages if not list((ROOT / "tests" / name).glob("test_*.py"))]
    assert missing == []


def _package_imports():
    """nnocc package -> the other nnocc packages (and top-level modules) it imports from."""
    edges = {}
    for path in (ROOT / "nnocc").rglob("*.py"):
        parts = path.relative_to(ROOT / "nnocc").parts
        source = parts[0] if len(parts) > 1 else parts[0][:-3]
        for target in re.findall(r"^\s*from nnocc\.([a-z_]+)", path.read_text(), flags=re.M):
            if target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def test_no_import_cycles_between_packages():
    """Stages depend one way (e.g. training on inference for the final validation, never back);
    the command line depends on everything and nothing on it."""
    edges = _package_imports()

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    assert sorted(p for p in edges if reaches(p, p, {p})) == []
    assert [p for p, targets in edges.items() if "cli" in targets and p != "__main__"] == []
