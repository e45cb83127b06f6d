"""Print a page template for ``dvc plots show --html-template`` with Vega, Vega-Lite and Vega-Embed inlined, so
that the plots render without a network (DVC's own page loads them from a CDN).

    python scripts/dvc_plots_page.py --packages          # the npm packages it needs: npm pack $(...) in DIR
    python scripts/dvc_plots_page.py DIR > page.html     # DIR holds their tarballs
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

# the versions DVC's own page loads (dvc_render.vega), each package's browser build
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>DVC plots</title>
{scripts}
  <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
  {{plot_divs}}
</body>
</html>
"""


def build(folder: Path, name: str, version: str) -> str:
    """The minified browser build of npm package ``name`` from its tarball in ``folder``."""
    tarball = folder / f"{name}-{version}.tgz"
    if not tarball.is_file():
        raise FileNotFoundError(f"{tarball} not found: npm pack {name}@{version}")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(f"package/build/{name}.min.js")
        return member.read().decode()


def page(folder: Path) -> str:
    scripts = "\n".join(f"  <script>{build(folder, n, v)}</script>" for n, v in PACKAGES.items())
    return PAGE.format(scripts=scripts)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/dvc_plots_page.py --packages | DIR")
    if sys.argv[1] == "--packages":
        print(" ".join(f"{name}@{version}" for name, version in PACKAGES.items()))
        sys.exit()
    try:
        sys.stdout.write(page(Path(sys.argv[1])))
    except (FileNotFoundError, KeyError) as error:
        sys.exit(f"error: {error}")
