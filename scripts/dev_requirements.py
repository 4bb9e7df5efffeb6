"""Print the `dev` extra's requirements from pyproject.toml, one per line (for `pip install -r`).

The Makefile installs them on top of an existing editable install, so that `make test` after
`make bench` does not rebuild the Cython extensions a second time.
"""

from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

data = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
print("\n".join(data["project"]["optional-dependencies"]["dev"]))
