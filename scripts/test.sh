#!/usr/bin/env bash
# Set up (a local .venv with the test extras, the JupyterLab extension built) and run the whole test suite:
# the TypeScript unit tests, the Python suite, then the browser tests of the JupyterLab panel.
# Arguments go to the Python suite only (and then the other two are left out).
set -euo pipefail
cd "$(dirname "$0")/.."
KALE_LIKE_EXTRAS=test,jupyter source scripts/setup_env.sh
if [ "$#" -gt 0 ]; then
  exec python -m pytest -n 2 "$@"
fi
built=kale_like/surfaces/server/labextension/static/style.js
if command -v node >/dev/null 2>&1; then
  [ -d node_modules ] || jlpm install
  jlpm test   # TypeScript: the tag grammar round trip (node's test runner)
fi
python -m pytest -n 2
# The browser tests run in a second pytest process: pytest-jupyter's event-loop fixtures and
# Playwright's sync API cannot share one.
if [ -f "$built" ] && [ -x /usr/bin/chromium ]; then
  KALE_LIKE_UI_TESTS=1 python -m pytest tests/ui -p no:xdist -p no:cacheprovider
else
  echo "browser tests not run: they need the built extension ($built; Node.js) and /usr/bin/chromium"
fi
