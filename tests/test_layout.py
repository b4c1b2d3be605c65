"""tests/ mirrors nnocc/: every package of the library has a test folder with tests in it."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_has_its_tests():
    packages = sorted(p.name for p in (ROOT / "nnocc").iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in packages if not list((ROOT / "tests" / name).glob("test_*.py"))]
    assert missing == []
