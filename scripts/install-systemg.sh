#!/usr/bin/env bash
# Install systemg for root on a systemd host (system mode), or stage it into DESTDIR.
#
# What it creates (every path below is prefixed with $DESTDIR):
#   $PREFIX/venv                       a dedicated virtualenv holding the `systemg` package
#   $PREFIX/share/doc/systemg          security.md (the unit's Documentation=)
#   /usr/local/bin/sysg                symlink -> $PREFIX/venv/bin/sysg
#   /etc/systemg                       0755 root:root; systemg.yaml copied from the example once
#   /var/lib/systemg, /var/log/systemg 0750 root:GROUP (0700 root:root with --no-group)
#   /etc/systemd/system/sysg.service   from packaging/sysg.service
#   the operator group GROUP (default `systemg`, `groupadd --system`) unless --no-group
#
# Idempotent: re-running upgrades the package, rewrites the unit, keeps an existing
# /etc/systemg/systemg.yaml and never loosens a directory's mode. `--uninstall` removes what
# this script installs; state, logs, an edited manifest and the group are kept (use
# `sudo sysg purge` for state and logs, `groupdel` for the group).
#
# With DESTDIR the tree is staged for its final root: the venv's scripts name
# $PREFIX/venv/bin/python (not $DESTDIR$PREFIX/...), so run it there, or use
# `$DESTDIR$PREFIX/venv/bin/python -m systemg` while it is staged.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
MARKER="install-systemg.sh:managed"

PREFIX=/opt/systemg
DESTDIR=${DESTDIR:-}
SOURCE=$REPO_DIR
PYTHON=${PYTHON:-python3}
GROUP=systemg
USE_GROUP=1
USE_SYSTEMCTL=1
ACTION=install

usage() {
    cat <<EOF
Usage: $PROG [options]

Install systemg for root: a venv under PREFIX, /usr/local/bin/sysg, /etc/systemg,
/var/lib/systemg, /var/log/systemg, the operator group and the systemd unit sysg.service
(which runs: sysg --sys start --config /etc/systemg/systemg.yaml --daemonize).

Options:
  --prefix DIR      install the venv under DIR/venv (default: /opt/systemg)
  --destdir DIR     stage everything under DIR (same as the DESTDIR environment variable)
  --source PATH     project directory, wheel or sdist to pip install
                    (default: the repository containing this script: $REPO_DIR)
  --python EXE      interpreter used to create the venv (default: python3, or \$PYTHON)
  --group NAME      operator group allowed to run status/logs/inspect/stop (default: systemg)
  --no-group        do not create or use an operator group (dirs become 0700 root:root)
  --no-systemctl    never call systemctl (default: 'systemctl daemon-reload' when not
                    staging into DESTDIR and systemd is running as PID 1)
  --uninstall       remove what this script installed (keeps state, logs, group and an
                    edited /etc/systemg/systemg.yaml)
  -h, --help        show this help

Then: edit /etc/systemg/systemg.yaml and run 'systemctl enable --now sysg'.
EOF
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

say() {
    printf '%s\n' "$*"
}

need_arg() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
        --prefix=*) PREFIX=${1#*=}; shift ;;
        --destdir) need_arg "$@"; DESTDIR=$2; shift 2 ;;
        --destdir=*) DESTDIR=${1#*=}; shift ;;
        --source) need_arg "$@"; SOURCE=$2; shift 2 ;;
        --source=*) SOURCE=${1#*=}; shift ;;
        --python) need_arg "$@"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --group) need_arg "$@"; GROUP=$2; USE_GROUP=1; shift 2 ;;
        --group=*) GROUP=${1#*=}; USE_GROUP=1; shift ;;
        --no-group) USE_GROUP=0; shift ;;
        --no-systemctl) USE_SYSTEMCTL=0; shift ;;
        --uninstall) ACTION=uninstall; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ $PREFIX == /* ]] || die "--prefix must be an absolute path, got '$PREFIX'"
[[ $PREFIX != / ]] || die "--prefix must not be /"
PREFIX=${PREFIX%/}
if [[ -n $DESTDIR ]]; then
    [[ $DESTDIR == /* ]] || DESTDIR=$(pwd)/$DESTDIR
    DESTDIR=${DESTDIR%/}
fi

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1
if [[ $IS_ROOT -eq 0 && -z $DESTDIR ]]; then
    die "installing for the host needs root: sudo $0 $*"
fi

# Final paths (as the host will see them) and their staged twins under DESTDIR.
VENV=$PREFIX/venv
DOCDIR=$PREFIX/share/doc/systemg
SYSG_LINK=/usr/local/bin/sysg
ETC_DIR=/etc/systemg
STATE_DIR=/var/lib/systemg
LOG_DIR=/var/log/systemg
UNIT=/etc/systemd/system/sysg.service
MANIFEST=$ETC_DIR/systemg.yaml
EXAMPLE=$REPO_DIR/examples/system-mode.yaml
UNIT_TEMPLATE=$REPO_DIR/packaging/sysg.service
SECURITY_DOC=$REPO_DIR/docs/security.md

d() {
    printf '%s%s' "$DESTDIR" "$1"
}

# systemctl is only useful on the live host with systemd as init (sd_booted's test).
systemctl_usable() {
    [[ $USE_SYSTEMCTL -eq 1 && -z $DESTDIR && -d /run/systemd/system ]] \
        && command -v systemctl >/dev/null 2>&1
}

# chown only when it can work: as root. A non-root DESTDIR staging keeps the caller's ids.
set_owner() {
    local owner=$1 path=$2
    if [[ $IS_ROOT -eq 1 ]]; then
        chown "$owner" "$path"
    fi
}

# Create a directory (parents included) and set its mode/owner. An existing directory gets
# the same mode and owner, so a re-run repairs drift.
make_dir() {
    local path=$1 mode=$2 owner=$3
    if [[ -L $path ]]; then
        die "$path is a symlink; refusing to use it"
    fi
    if [[ ! -d $path ]]; then
        mkdir -p -- "$path"
        say "created $path"
    fi
    chmod "$mode" "$path"
    set_owner "$owner" "$path"
    say "  mode $mode owner $owner: $path"
}

group_exists() {
    getent group "$1" >/dev/null 2>&1
}

ensure_group() {
    if [[ $USE_GROUP -eq 0 ]]; then
        say "operator group: skipped (--no-group); only root may talk to the system supervisor"
        return
    fi
    if group_exists "$GROUP"; then
        say "operator group '$GROUP' already exists"
        return
    fi
    if [[ -n $DESTDIR ]]; then
        die "group '$GROUP' does not exist and DESTDIR is set; create it on the target host or pass --no-group"
    fi
    command -v groupadd >/dev/null 2>&1 || die "groupadd not found; create group '$GROUP' by hand or pass --no-group"
    groupadd --system "$GROUP"
    say "created group '$GROUP' (add operators with: usermod -aG $GROUP NAME)"
}

# Build from a clean copy of a source directory so pip never writes build/ or *.egg-info
# into the caller's tree.
stage_source() {
    local src=$1 tmp=$2
    if [[ -d $src ]]; then
        [[ -f $src/pyproject.toml ]] || die "--source $src has no pyproject.toml"
        tar -C "$src" \
            --exclude=.git --exclude=.venv --exclude=build --exclude=dist \
            --exclude='*.egg-info' --exclude=__pycache__ --exclude=.mypy_cache \
            --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.hypothesis \
            -cf - . | tar -C "$tmp" -xf -
        printf '%s' "$tmp"
    elif [[ -f $src ]]; then
        printf '%s' "$src"
    else
        die "--source $src does not exist"
    fi
}

# With DESTDIR the venv was created at its staged path; point its scripts and activate files
# at the final path so the tree is correct once copied to the target root.
relocate_venv() {
    local staged=$1 final=$2 f
    [[ $staged == "$final" ]] && return
    for f in "$staged"/bin/*; do
        [[ -f $f && ! -L $f ]] || continue
        if grep -qF -- "$staged" "$f" 2>/dev/null; then
            sed -i "s|$staged|$final|g" "$f"
        fi
    done
    say "  venv scripts point at $final (staged under DESTDIR)"
}

install_venv() {
    local staged_venv tmp src
    staged_venv=$(d "$VENV")
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; pass --python"
    mkdir -p -- "$(d "$PREFIX")"
    if [[ ! -x $staged_venv/bin/python ]]; then
        "$PYTHON" -m venv "$staged_venv" \
            || die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
        say "created venv $staged_venv"
    else
        say "venv $staged_venv already exists"
    fi
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $tmp now: it is local to this function
    trap "rm -rf -- '$tmp'" EXIT
    src=$(stage_source "$SOURCE" "$tmp")
    say "pip install $SOURCE into $staged_venv"
    "$staged_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input --upgrade "$src"
    rm -rf -- "$tmp"
    trap - EXIT
    [[ -x $staged_venv/bin/sysg ]] || die "pip did not install $staged_venv/bin/sysg"
    relocate_venv "$staged_venv" "$VENV"
    say "installed $staged_venv/bin/sysg ($("$staged_venv/bin/python" -c \
        'import systemg; print("systemg", systemg.__version__)'))"
}

install_link() {
    local link
    link=$(d "$SYSG_LINK")
    mkdir -p -- "$(dirname -- "$link")"
    if [[ -e $link && ! -L $link ]]; then
        die "$link exists and is not a symlink; move it away first"
    fi
    ln -sfn -- "$VENV/bin/sysg" "$link"
    say "linked $link -> $VENV/bin/sysg"
}

install_docs() {
    local dir
    dir=$(d "$DOCDIR")
    mkdir -p -- "$dir"
    if [[ -f $SECURITY_DOC ]]; then
        install -m 0644 -- "$SECURITY_DOC" "$dir/security.md"
        say "installed $dir/security.md"
    fi
}

install_unit() {
    local unit tmp
    unit=$(d "$UNIT")
    [[ -f $UNIT_TEMPLATE ]] || die "unit template $UNIT_TEMPLATE is missing"
    mkdir -p -- "$(dirname -- "$unit")"
    tmp=$(mktemp "$(dirname -- "$unit")/.sysg.service.XXXXXX")
    sed -e "s|@SYSG@|$SYSG_LINK|g" -e "s|@DOCDIR@|$DOCDIR|g" "$UNIT_TEMPLATE" >"$tmp"
    chmod 0644 "$tmp"
    set_owner root:root "$tmp"
    mv -f -- "$tmp" "$unit"
    say "wrote $unit"
}

install_manifest() {
    local manifest
    manifest=$(d "$MANIFEST")
    if [[ -e $manifest || -L $manifest ]]; then
        say "kept existing $manifest"
        return
    fi
    [[ -f $EXAMPLE ]] || die "example manifest $EXAMPLE is missing"
    # A root supervisor only loads root-owned manifests that no group or other may write.
    install -m 0644 -- "$EXAMPLE" "$manifest"
    set_owner root:root "$manifest"
    say "installed $manifest (from examples/system-mode.yaml; edit it before starting)"
}

do_install() {
    local private_mode=0700 private_owner=root:root
    ensure_group
    if [[ $USE_GROUP -eq 1 ]]; then
        private_mode=0750
        private_owner=root:$GROUP
    fi
    install_venv
    install_link
    install_docs
    make_dir "$(d "$ETC_DIR")" 0755 root:root
    make_dir "$(d "$STATE_DIR")" "$private_mode" "$private_owner"
    make_dir "$(d "$LOG_DIR")" "$private_mode" "$private_owner"
    install_manifest
    install_unit
    if systemctl_usable; then
        systemctl daemon-reload
        say "ran systemctl daemon-reload"
        say "next: edit $MANIFEST, then: systemctl enable --now sysg"
    else
        say "systemctl not called (DESTDIR, --no-systemctl, or systemd is not PID 1)"
    fi
    say "done"
}

remove_path() {
    local path=$1
    if [[ -e $path || -L $path ]]; then
        rm -rf -- "$path"
        say "removed $path"
    fi
}

# rmdir only when empty: never delete state, logs or an operator's files.
remove_dir_if_empty() {
    local path=$1
    if [[ -d $path && ! -L $path ]]; then
        if rmdir -- "$path" 2>/dev/null; then
            say "removed $path"
        else
            say "kept $path (not empty)"
        fi
    fi
}

do_uninstall() {
    local unit link manifest
    unit=$(d "$UNIT")
    link=$(d "$SYSG_LINK")
    manifest=$(d "$MANIFEST")
    if systemctl_usable && [[ -f $unit ]]; then
        systemctl disable --now sysg.service || true
        say "stopped and disabled sysg.service"
    fi
    if [[ -f $unit ]]; then
        if grep -qF -- "$MARKER" "$unit"; then
            remove_path "$unit"
        else
            say "kept $unit (not written by $PROG)"
        fi
    fi
    if [[ -L $link && $(readlink -- "$link") == "$VENV/bin/sysg" ]]; then
        remove_path "$link"
    elif [[ -e $link || -L $link ]]; then
        say "kept $link (does not point at $VENV/bin/sysg)"
    fi
    if [[ -f $(d "$VENV")/pyvenv.cfg ]]; then
        remove_path "$(d "$VENV")"
    elif [[ -e $(d "$VENV") ]]; then
        say "kept $(d "$VENV") (not a virtualenv)"
    fi
    remove_path "$(d "$DOCDIR")/security.md"
    remove_dir_if_empty "$(d "$DOCDIR")"
    remove_dir_if_empty "$(d "$PREFIX")/share/doc"
    remove_dir_if_empty "$(d "$PREFIX")/share"
    remove_dir_if_empty "$(d "$PREFIX")"
    if [[ -f $manifest ]]; then
        if [[ -f $EXAMPLE ]] && cmp -s -- "$EXAMPLE" "$manifest"; then
            remove_path "$manifest"
        else
            say "kept $manifest (edited)"
        fi
    fi
    remove_dir_if_empty "$(d "$ETC_DIR")"
    remove_dir_if_empty "$(d "$STATE_DIR")"
    remove_dir_if_empty "$(d "$LOG_DIR")"
    if systemctl_usable; then
        systemctl daemon-reload
        say "ran systemctl daemon-reload"
    fi
    if [[ $USE_GROUP -eq 1 ]] && group_exists "$GROUP"; then
        say "kept group '$GROUP' (remove with: groupdel $GROUP)"
    fi
    say "uninstalled (state and logs, if any, are removed by: sudo sysg purge)"
}

case $ACTION in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
