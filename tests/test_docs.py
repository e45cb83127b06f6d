"""The documentation site: built strictly (a broken link, a missing page or a missing included output fails), its
generated params reference complete, and its pages rendered by headless Chromium with their navigation."""

from __future__ import annotations

import functools
import html
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from helpers import open_in_chromium

from rlvr.config import Params


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``project`` (its mkdocs.yml) into ``site``."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    env = {"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = build(ROOT, site)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def _docs_copy(tmp_path: Path) -> Path:
    for name in ("docs", "rlvr", "scripts"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("mkdocs.yml", "CONTRIBUTING.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    ("page", "text", "complaint"),
    [
        ("tracking.md", "[the stages](no-such-page.md)", "no-such-page.md"),  # a broken link
        ("grading.md", '--8<-- "no-such-output.md"', "no-such-output.md"),  # an included output that is missing
    ],
)
def test_the_strict_build_fails_on_a_broken_link_or_a_missing_output(tmp_path, page, text, complaint):
    project = _docs_copy(tmp_path / "project")
    with (project / "docs" / page).open("a") as file:
        file.write(f"\n{text}\n")
    result = build(project, tmp_path / "site")
    assert result.returncode != 0 and complaint in result.stdout + result.stderr


def _nav(entries: list | None = None) -> list[tuple[str, str | None]]:
    """The navigation of mkdocs.yml as (title, page) pairs in order; a section's title has no page."""
    entries = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"] if entries is None else entries
    pairs = []
    for entry in entries:
        for title, value in entry.items():
            pairs += [(title, None), *_nav(value)] if isinstance(value, list) else [(title, value)]
    return pairs


def test_every_page_file_is_in_the_navigation_and_every_nav_entry_is_a_page():
    listed = {page for _, page in _nav() if page}
    files = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md") if "results" not in p.parts}
    assert listed == files


def test_the_params_reference_lists_every_field_with_its_help(site):
    html = (site / "reference" / "params.html").read_text()
    for section, field in Params.model_fields.items():
        for name, info in field.annotation.model_fields.items():
            assert info.description, f"{section}.{name} has no help text"
            assert f"<code>{section}.{name}</code>" in html, f"{section}.{name} is not in the params reference"


@pytest.fixture
def served(site) -> str:
    """The built site served over HTTP, as a web host or ``make docs-serve`` serves it (search needs HTTP)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_home_page_and_params_reference_render_with_their_navigation_in_chromium(served, tmp_path):
    """Headless Chromium builds each page with the site's navigation (every nav title, linking to its page), the
    page's own title and content; it logs no error to the console. The screenshots land beside the test's files."""
    for page, heading, content in [
        ("index.html", "one-shot-rlvr", "make run"),
        ("reference/params.html", "Params reference", "train.max_steps"),
    ]:
        dom, console = open_in_chromium(f"{served}/{page}", screenshot=tmp_path / f"{Path(page).stem}.png")
        nav = dom.split('class="md-nav md-nav--primary"', 1)[1].split("md-sidebar--secondary", 1)[0]  # the left bar
        depth = page.count("/")
        for title, target in _nav():
            assert re.search(rf">\s*{re.escape(html.escape(title, quote=False))}\s*<", nav), (page, title)
            if target:  # the link to it, relative to this page
                assert f'href="{"../" * depth}{target.replace(".md", ".html")}"' in nav or target == page.replace(
                    ".html", ".md"
                ), (page, target)
        assert f">{heading}<" in dom.replace('<a class="headerlink"', "<"), page
        assert content in dom, page
        assert not [line for line in console if "ERROR" in line or "Uncaught" in line], console
        assert (tmp_path / f"{Path(page).stem}.png").stat().st_size > 10_000
