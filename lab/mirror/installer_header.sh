#!/bin/sh
# @NAME@ @VERSION@ installer (Linux-x86_64), constructor-style.
#
# A LAB BUILD OF REAL CONDA: conda @VERSION@ built from its own source tarball,
# with its runtime from PyPI wheels (lab/mirror/build.py). It differs from
# Anaconda's Miniconda in one way: the solver is "classic", because
# conda-libmamba-solver is not available offline; $PREFIX/condarc.d/lab-build.yml
# says so and `conda info` lists it.
#
# Layout: this shell header, then one gzip'd tar of extracted conda packages
# (pkgs/<dist>/) and their @EXPLICIT list. Like constructor, the payload's
# conda installs the packages offline into PREFIX: `conda install --offline
# --file initial-state.explicit.txt -p PREFIX` (so -u overlays an existing
# installation: same-name packages are replaced, others kept).
# HEADER_SIZE=@HEADER_SIZE@ PAYLOAD_SIZE=@PAYLOAD_SIZE@

# refuse being sourced (constructor does the same)
if ! echo "$0" | grep '\.sh$' >/dev/null; then
    printf 'Please run using "bash" or "sh", but not "." or "source".\n' >&2
    return 1 2>/dev/null || exit 1
fi

THIS_PATH="$0"
case "$THIS_PATH" in /*) ;; *) THIS_PATH="$(pwd)/$THIS_PATH" ;; esac
HEADER_SIZE=$(expr "@HEADER_SIZE@" + 0)
PAYLOAD_SIZE=$(expr "@PAYLOAD_SIZE@" + 0)
INSTALLER_NAME="@NAME@"
INSTALLER_VER="@VERSION@"
PYTHON_DIST="@PYTHON_DIST@"
DISTS="@DISTS@"
PREFIX="${HOME:-/opt}/@DEFAULT_DIR@"
BATCH=0
FORCE=0
KEEP_PKGS=0

usage() {
    cat <<USAGE
usage: $0 [options]

Installs ${INSTALLER_NAME} ${INSTALLER_VER} (a lab build of real conda ${INSTALLER_VER}, classic solver)

-b           run install in batch mode (without manual intervention),
             it is expected the license terms (if any) are agreed upon
-f           no error if install prefix already exists
-h           print this help message and exit
-p PREFIX    install prefix, defaults to ${PREFIX}, must not contain spaces.
-s           skip running pre/post-link/install scripts
-u           update an existing installation
-k           keep the pkgs/ directory (package cache)
-t           run package tests after installation (may install conda-build)
USAGE
}

for arg in "$@"; do
    case "$arg" in
        --help) usage; exit 2 ;;
        --*) echo "ERROR: did not recognize option '$arg', please try -h" >&2; exit 1 ;;
    esac
done
while getopts ":bifhkp:sut" x; do
    case "$x" in
        h) usage; exit 2 ;;
        b) BATCH=1 ;;
        i) ;;
        f|u) FORCE=1 ;;
        k) KEEP_PKGS=1 ;;
        p) PREFIX="$OPTARG" ;;
        s|t) ;;
        :) echo "ERROR: option '-$OPTARG' requires an argument, please try -h" >&2; exit 1 ;;
        *) echo "ERROR: did not recognize option '-$OPTARG', please try -h" >&2; exit 1 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then
    echo "ERROR: did not recognize option '$1', please try -h" >&2
    exit 1
fi

if [ "$BATCH" = "0" ]; then
    printf "\nWelcome to %s %s (a lab build of real conda)\n\n" "$INSTALLER_NAME" "$INSTALLER_VER"
    printf "%s will now be installed into this location:\n%s\n\n" "$INSTALLER_NAME" "$PREFIX"
    printf "  - Press ENTER to confirm the location\n  - Press CTRL-C to abort the installation\n  - Or specify a different location below\n\n"
    printf "[%s] >>> " "$PREFIX"
    read -r user_prefix || exit 2
    if [ -n "$user_prefix" ]; then PREFIX="$user_prefix"; fi
fi

case "$PREFIX" in
    *\ *) echo "ERROR: Cannot install into directories with spaces" >&2; exit 1 ;;
esac

if [ "$FORCE" = "0" ] && [ -e "$PREFIX" ]; then
    echo "ERROR: File or directory already exists: '$PREFIX'" >&2
    echo "If you want to update an existing installation, use the -u option." >&2
    exit 1
fi

if ! mkdir -p "$PREFIX"; then
    echo "ERROR: Could not create directory: '$PREFIX'" >&2
    exit 1
fi
PREFIX=$(cd "$PREFIX" && pwd -P)
echo "PREFIX=$PREFIX"

# free space check (the payload unpacks to roughly 4x its size)
need_kb=$(( PAYLOAD_SIZE * 4 / 1024 ))
avail_kb=$(df -Pk "$PREFIX" 2>/dev/null | awk 'NR==2 {print $4}')
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt "$need_kb" ]; then
    echo "ERROR: Not enough disk space in '$PREFIX': need ${need_kb} KB, have ${avail_kb} KB" >&2
    exit 1
fi

echo "Unpacking payload ..."
mkdir -p "$PREFIX/pkgs" "$PREFIX/conda-meta" || exit 1
if ! tail -c "+$((HEADER_SIZE + 1))" "$THIS_PATH" | head -c "$PAYLOAD_SIZE" | gzip -dc | tar -xf - -C "$PREFIX"; then
    echo "ERROR: could not unpack the installer payload" >&2; exit 1
fi
mv "$PREFIX/pkgs/explicit.txt" "$PREFIX/conda-meta/initial-state.explicit.txt"
[ -e "$PREFIX/pkgs/urls.txt" ] || : > "$PREFIX/pkgs/urls.txt"
[ -e "$PREFIX/conda-meta/history" ] || : > "$PREFIX/conda-meta/history"

# The payload's own conda, run by the payload's python, installs the base env.
BOOT_PATH=""
for d in $DISTS; do
    for sp in "$PREFIX/pkgs/$d/lib/python3.11/site-packages" "$PREFIX/pkgs/$d/site-packages"; do
        if [ -d "$sp" ]; then BOOT_PATH="${BOOT_PATH:+$BOOT_PATH:}$sp"; fi
    done
done
echo "Installing base environment ..."
if ! (unset PYTHONHOME CONDA_PREFIX CONDA_DEFAULT_ENV CONDA_SHLVL CONDA_EXE;
      CONDARC="$PREFIX/pkgs/.installer-condarc" CONDA_PKGS_DIRS="$PREFIX/pkgs" CONDA_SOLVER=classic CONDA_CHANNELS=conda-forge \
      CONDA_SAFETY_CHECKS=disabled CONDA_EXTRA_SAFETY_CHECKS=no CONDA_NOTIFY_OUTDATED_CONDA=false \
      PYTHONPATH="$BOOT_PATH" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
      exec "$PREFIX/pkgs/$PYTHON_DIST/bin/python3.11" -s -m conda install --offline --yes --quiet \
        --file "$PREFIX/conda-meta/initial-state.explicit.txt" -p "$PREFIX"); then
    echo "ERROR: could not install packages into '$PREFIX'" >&2
    exit 1
fi

mkdir -p "$PREFIX/condarc.d" "$PREFIX/envs"
cat > "$PREFIX/condarc.d/lab-build.yml" <<CONDARC
# ${INSTALLER_NAME} ${INSTALLER_VER}: a lab build of real conda ${INSTALLER_VER} (from its source
# tarball, lab/mirror/build.py), not Anaconda's Miniconda. Miniconda's default
# solver is libmamba; conda-libmamba-solver is not available offline, so this
# build uses the classic solver (pycosat).
solver: classic
CONDARC
if [ "$(id -u)" != 0 ]; then : > "$PREFIX/.nonadmin"; fi
mkdir -p "${HOME:-/root}/.conda" 2>/dev/null || :

if [ "$KEEP_PKGS" = "0" ]; then
    # drop the package cache's contents, keep an empty (writable) pkgs/ like Miniconda
    find "$PREFIX/pkgs" -mindepth 1 -maxdepth 1 ! -name urls.txt -exec rm -rf {} +
    : > "$PREFIX/pkgs/urls.txt"
fi

echo "installation finished."
if [ "$BATCH" = "0" ]; then
    printf "\nThis installer never edits shell startup files. To use conda:\n  . %s/etc/profile.d/conda.sh\n" "$PREFIX"
fi
exit 0
# ---- payload follows ----
