"""Repository layout and packaging rules (DESIGN.md §2)."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CORE = {"rclpy", "pydrake", "sim", "geo4d_ros", "training", "launch", "launch_ros"}


def _imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_ros_drake_or_downstream_packages():
    offenders = {}
    files = sorted((ROOT / "geo4d_core").rglob("*.py"))
    assert len(files) > 5
    for path in files:
        bad = _imported_top_modules(path) & FORBIDDEN_IN_CORE
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


@pytest.mark.parametrize("package", ["training"])
def test_training_does_not_import_ros_or_drake(package):
    for path in (ROOT / package).rglob("*.py"):
        assert not _imported_top_modules(path) & {"rclpy", "pydrake", "geo4d_ros", "sim"}, path


def test_package_xml_is_a_format3_ament_python_package_named_geo4d():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "geo4d"
    assert root.find("export").findtext("build_type") == "ament_python"
    assert (ROOT / "resource" / "geo4d").is_file()


def test_colcon_workspace_links_back_to_the_package():
    link = ROOT / "ros2_ws" / "src" / "geo4d"
    assert link.is_symlink()
    assert (link / "package.xml").resolve() == (ROOT / "package.xml").resolve()


def test_every_python_package_is_importable():
    import importlib

    for name in ["geo4d_core", "geo4d_core.geometry", "geo4d_core.metrics", "geo4d_core.data", "sim", "training",
                 "geo4d_ros"]:
        assert importlib.import_module(name).__doc__, name


def test_ci_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert "make test" in text
    makefile = (ROOT / "Makefile").read_text()
    assert "constraints-cpu.txt" in makefile
    assert "torch==2.13.0" in (ROOT / "constraints-cpu.txt").read_text()
