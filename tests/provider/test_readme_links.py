"""README's links work where the README is read: every relative link names a file of the repository and of the
source distribution (the package index shows the README; the sdist carries the pages it links to)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links() -> set[str]:
    targets = {m.group(1).split("#", 1)[0] for m in LINK.finditer((REPO / "README.md").read_text())}
    return {t for t in targets if t and "://" not in t and not t.startswith("mailto:")}


def test_every_relative_readme_link_names_a_file_of_the_repository() -> None:
    links = relative_links()
    assert links, "the README links no page at all: the pattern is wrong"
    assert sorted(t for t in links if not (REPO / t).exists()) == []


def test_the_source_distribution_carries_every_page_the_readme_links(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed (make setup installs it into .tools/)")
    subprocess.run([uv, "build", "-q", "--sdist", "--out-dir", str(tmp_path), str(REPO)], check=True)
    (sdist,) = tmp_path.glob("airflow_provider_fbmkto-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert sorted(relative_links() - members) == []
