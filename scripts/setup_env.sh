# Sourced by the other scripts: create .venv once, install the project into it, activate it.
# Set KALE_LIKE_EXTRAS (e.g. "test") to install optional dependency groups too. The JupyterLab
# extension's JavaScript (labextension/) is built only with the "jupyter" extra, and only when
# Node.js is there; otherwise the install is Python-only.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
spec="."
if [ -n "${KALE_LIKE_EXTRAS:-}" ]; then spec=".[${KALE_LIKE_EXTRAS}]"; fi
skip_js=1
case ",${KALE_LIKE_EXTRAS:-}," in
  *,jupyter,*)
    if command -v node >/dev/null 2>&1; then skip_js=0
    else echo "setup_env: Node.js not found; the JupyterLab panel's JavaScript is not built" >&2; fi ;;
esac
if [ "$skip_js" = 1 ]; then
  HATCH_JUPYTER_BUILDER_SKIP_NPM=1 .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
else
  # jlpm needs the committed yarn.lock to be current (CI sets CI=true: immutable installs)
  PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
