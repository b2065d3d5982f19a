"""The public API: ``coop.__all__`` is sorted, complete and importable."""

import coop


def test_all_is_sorted_and_unique() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # constants, classes, functions (ruff RUF022)
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(coop.__all__) == sorted(set(coop.__all__), key=isort_style)


def test_every_public_name_is_exported() -> None:
    public = {
        name for name in vars(coop) if not name.startswith("_") and name not in {"annotations"}
    }
    modules = {name for name in public if type(getattr(coop, name)).__name__ == "module"}
    assert public - modules - {"PackageNotFoundError", "version"} <= set(coop.__all__)
    for name in coop.__all__:
        assert hasattr(coop, name), name


def test_plugins_import_only_the_public_api() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "plugins"
    offenders = [
        str(path.relative_to(root))
        for path in root.glob("*/*/src/**/*.py")
        if "from coop._" in path.read_text(encoding="utf-8")
        or "import coop._" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
