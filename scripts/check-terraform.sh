#!/usr/bin/env bash
# Checks terraform/ without a Terraform binary (scripts/check_terraform.py says what it checks):
# parsing, declarations, module inputs, formatting, checkov skip reasons, then checkov itself.
# scripts/test.sh runs it; it also runs on its own:
#
#   scripts/check-terraform.sh               make or reuse the venvs, then check
#   scripts/check-terraform.sh --setup-only  only make the venvs
#
# Two cached venvs (checkov depends on a fork of python-hcl2 that installs the same module
# name), each with the exact pins of scripts/terraform-check/requirements-*.txt; they are
# reinstalled only when a pin changes, so a second run makes no network calls.
#
# Environment (all optional):
#   STRATO_CACHE_DIR  where the venvs and the pip log live (default ~/.cache/strato)
#   STRATO_PYTHON     interpreter the venvs are made from (default python3; 3.9 to 3.12, as
#                     checkov 3.3.30 supports)
set -euo pipefail

setup_only=false
case "${1:-}" in
    --setup-only) setup_only=true ;;
    "") ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pins_dir="$repo_root/scripts/terraform-check"
cache_dir="${STRATO_CACHE_DIR:-$HOME/.cache/strato}"
hcl2_venv="$cache_dir/venv-terraform-hcl2"
checkov_venv="$cache_dir/venv-checkov"
log="$cache_dir/terraform-check-pip.log"
mkdir -p "$cache_dir"

step() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Exits 0 when the venv's python has every `name==version` line of the requirements file.
has_pins() { # has_pins VENV REQUIREMENTS
    "$1/bin/python" "$repo_root/scripts/has_pins.py" "$2" >/dev/null 2>&1
}

setup_venv() { # setup_venv VENV REQUIREMENTS [PIP-ARGS...]
    local venv="$1" requirements="$2"
    shift 2
    if [ -e "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # The interpreter it was made from is gone (e.g. a removed pyenv version).
        note "venv $venv is broken, recreating it"
        rm -rf "$venv"
    fi
    if [ -e "$venv" ] && has_pins "$venv" "$requirements"; then
        note "$(basename "$venv"): pins of ${requirements#"$repo_root"/} already installed"
        return
    fi
    local python="${STRATO_PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found (set STRATO_PYTHON)"
    "$python" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 12)))' ||
        die "$python is Python $("$python" -c 'import platform; print(platform.python_version())');" \
            "checkov 3.3.30 supports 3.9 to 3.12: point STRATO_PYTHON at one of those"
    local start=$SECONDS
    if [ ! -e "$venv" ] && ! "$python" -m venv "$venv" >>"$log" 2>&1; then
        rm -rf "$venv"
        tail -n 20 "$log" >&2
        die "could not create the venv $venv with $python (log: $log)"
    fi
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
        -r "$requirements" "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install -r ${requirements#"$repo_root"/} failed (full log: $log)"
    fi
    has_pins "$venv" "$requirements" ||
        die "$venv does not have the pins of $requirements after pip install (log: $log)"
    note "$(basename "$venv"): installed ${requirements#"$repo_root"/} in $((SECONDS - start)) s (log: $log)"
}

step "terraform check venvs in $cache_dir"
# Two runs at once (e.g. two worktrees) would race on the venvs.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_dir/terraform-check.lock"
    flock 9
fi
setup_venv "$hcl2_venv" "$pins_dir/requirements-hcl2.txt"
setup_venv "$checkov_venv" "$pins_dir/requirements-checkov.txt" -c "$pins_dir/constraints-checkov.txt"
if command -v flock >/dev/null 2>&1; then
    exec 9>&-
fi
if [ "$setup_only" = true ]; then
    exit 0
fi

# No __pycache__ in the repository; checkov must not try to reach its vendor's API.
export PYTHONDONTWRITEBYTECODE=1 BC_SKIP_MAPPING=TRUE
exec "$hcl2_venv/bin/python" "$repo_root/scripts/check_terraform.py" \
    --checkov "$checkov_venv/bin/checkov" "$repo_root/terraform"
