#!/usr/bin/env bash
# Set up everything seqlite needs on a fresh Linux machine, then start the course.
#
#   bash setup.sh              set up, then open the course in JupyterLab (with a terminal),
#                              or run the offline demo (no terminal attached)
#   bash setup.sh --no-start   set up only (CI does this; so does CI=true)
#
# What it installs: Debian's graphviz (torchviz graphs) and chromium (browser tests) when
# apt-get is there, a virtual environment in .venv, and seqlite with its course, dev and train extras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

start=1
if [[ "${1:-}" == "--no-start" || -n "${CI:-}" ]]; then start=0; fi
python=${PYTHON:-python3}

missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Debian and Ubuntu ship Python without venv/ensurepip until python3-venv is installed.
[[ -x .venv/bin/python ]] || "$python" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    echo "setup: installing ${missing[*]} with apt-get"
    if ! { $sudo apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
      # Keep going: graphs and browser tests say what is missing when they need it.
      echo "setup: could not install ${missing[*]}; install them yourself (graphs and browser tests need them)" >&2
    fi
  else
    echo "setup: please install ${missing[*]} with your package manager (graphs and browser tests need them)" >&2
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
echo "setup: installing seqlite with its course, dev and train extras into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[course,dev,train]'
echo "setup: done. Run the tests with: .venv/bin/pytest"

if ((start)); then
  if [[ -t 0 && -t 1 ]]; then
    root_flag=()
    if [[ "$(id -u)" -eq 0 ]]; then root_flag=(--allow-root); fi  # JupyterLab refuses root otherwise
    exec .venv/bin/jupyter lab "${root_flag[@]}" notebooks/00_start_here.ipynb
  else
    exec .venv/bin/seqlite demo
  fi
fi
