# Sourced by demo.sh and test.sh: creates the project's virtual environment
# if missing and installs the project into it (quick when already installed;
# picks up dependency changes). Usage: ensure_venv ".[dev]"  -> sets $venv, $py
ensure_venv() {
  local spec="$1"
  venv="${VENV:-$root/.venv}"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
  fi
  py="$venv/bin/python"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet -e "$spec"
}
