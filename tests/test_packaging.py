"""The wheel in a clean venv: built from a fresh clone, installed outside the checkout, it runs
the shipped suites. Also: the version comes from git tags, with a fallback for a tree without .git.

Why: a packaging mistake (a suite, template or probe script left out of the wheel, a broken entry
point) only shows once the package is installed away from the checkout. The build runs without
isolation and the install without dependencies (the venv sees this interpreter's packages), so
the test needs no network. It builds the committed HEAD: uncommitted changes are not in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TAG = "9.8.7"
# One worker builds once for the whole module (its fixtures are module-scoped).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _build(src: Path, out: Path, *only: str) -> list[Path]:
    _run(sys.executable, "-m", "build", "--no-isolation", *only, "--outdir", out, src, cwd=src)
    return sorted(out.iterdir())


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the version comes from git tags)")
    src = tmp_path_factory.mktemp("clone") / "src"
    _run("git", "clone", "--quiet", "--no-tags", ROOT, src, cwd=ROOT)
    _run("git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", f"v{TAG}", cwd=src)
    return src


@pytest.fixture(scope="module")
def dist(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("dist")
    files = _build(clone, out)  # sdist, then the wheel built from the sdist
    _run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=out)  # metadata check
    return files


def _wheel(dist: list[Path]) -> Path:
    return next(p for p in dist if p.suffix == ".whl")


def test_version_comes_from_the_git_tag(dist: list[Path]) -> None:
    assert sorted(p.name for p in dist) == [
        f"netpol_conformance-{TAG}-py3-none-any.whl",
        f"netpol_conformance-{TAG}.tar.gz",
    ]


def test_wheel_carries_suites_probes_templates_and_both_entry_points(dist: list[Path]) -> None:
    names = zipfile.ZipFile(_wheel(dist)).namelist()
    shipped = sorted(
        str(p.relative_to(ROOT / "scenarios")) for p in (ROOT / "scenarios").rglob("*.yaml")
    )
    suites = sorted(n.removeprefix("conformance/suites/") for n in names if "/suites/" in n)
    assert suites == shipped
    assert any(n.startswith("conformance/probes/") and n.endswith(".sh") for n in names)
    assert any(n.startswith("conformance/reports/templates/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(_wheel(dist)).read(entry_points).decode()
    assert "netpol-conformance = conformance.cli:main" in text
    assert "kubectl-netpol_conformance = conformance.cli:kubectl_main" in text


def test_wheel_in_a_clean_venv_evaluates_every_suite(dist: list[Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # No pip of its own (quicker): this interpreter's pip installs into it.
    _run(
        sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path
    )
    bin_ = venv / "bin"
    pip = (sys.executable, "-m", "pip", "--python", bin_ / "python", "install", "-q")
    _run(*pip, "--no-deps", "--no-index", _wheel(dist), cwd=tmp_path)
    work = tmp_path / "elsewhere"  # no scenarios/ here: the suites must come from the package
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run(
        bin_ / "python", "-c", "import conformance; print(conformance.__file__)", cwd=work, env=env
    )
    assert Path(where.strip()).is_relative_to(venv), where
    assert _run(bin_ / "netpol-conformance", "--version", cwd=work, env=env).split() == [
        "netpol-conformance",
        TAG,
    ]
    text = _run(bin_ / "netpol-conformance", "evaluate", "--suite", "all", cwd=work, env=env)
    n_files = len(list((ROOT / "scenarios").rglob("*.yaml")))
    headers = [line for line in text.splitlines() if line.startswith("== ")]
    assert len(headers) == n_files
    assert all(f"{venv}" in h and "/conformance/suites/" in h for h in headers), headers[:3]
    listing = _run(bin_ / "netpol-conformance", "suites", cwd=work, env=env)
    assert f"all       {n_files} scenarios" in listing, listing
    # The kubectl plugin is installed under its krew name.
    assert "usage: kubectl netpol-conformance" in _run(
        bin_ / "kubectl-netpol_conformance", "--help", cwd=work, env=env
    )


def test_git_archive_knows_its_version_and_a_bare_tree_falls_back(
    clone: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "src.tar"
    _run("git", "archive", "--format=tar", f"--output={archive}", "HEAD", cwd=clone)
    exported = tmp_path / "exported"
    with tarfile.open(archive) as tar:
        tar.extractall(exported, filter="data")
    assert _build(exported, tmp_path / "a", "--sdist")[0].name == f"netpol_conformance-{TAG}.tar.gz"

    bare = tmp_path / "bare"  # a copy with neither .git nor a filled-in .git_archival.txt
    shutil.copytree(
        clone,
        bare,
        ignore=shutil.ignore_patterns(".git", ".git_archival.txt", "*.egg-info", "build"),
    )
    assert _build(bare, tmp_path / "b", "--sdist")[0].name == "netpol_conformance-0.0.0.dev0.tar.gz"
