# Sourced by the other scripts: create .venv once, install the project into it, activate it.
# Set KALE_LIKE_EXTRAS (e.g. "test") to install optional dependency groups too.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
spec="."
if [ -n "${KALE_LIKE_EXTRAS:-}" ]; then spec=".[${KALE_LIKE_EXTRAS}]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
# shellcheck disable=SC1091
source .venv/bin/activate
