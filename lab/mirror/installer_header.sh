#!/bin/sh
# @NAME@ @VERSION@ installer (Linux-x86_64), constructor-style.
#
# LAB TEST DOUBLE: this installs "labconda", a stand-in for conda built on
# py-rattler for offline lab tests. It is NOT Anaconda's conda.
#
# Layout: this shell header, then two gzip'd tar payloads holding extracted
# conda packages (base: python, python_abi, py-rattler, pyyaml; then the
# labconda package). Installs offline: a bootstrap python from the payload
# links the packages into PREFIX with rattler.
# HEADER_SIZE=@HEADER_SIZE@ SEG1_SIZE=@SEG1_SIZE@ SEG2_SIZE=@SEG2_SIZE@

# refuse being sourced (constructor does the same)
if ! echo "$0" | grep '\.sh$' >/dev/null; then
    printf 'Please run using "bash" or "sh", but not "." or "source".\n' >&2
    return 1 2>/dev/null || exit 1
fi

THIS_PATH="$0"
case "$THIS_PATH" in /*) ;; *) THIS_PATH="$(pwd)/$THIS_PATH" ;; esac
HEADER_SIZE=@HEADER_SIZE@
SEG1_SIZE=@SEG1_SIZE@
SEG2_SIZE=@SEG2_SIZE@
# strip the fixed-width zero padding
HEADER_SIZE=$(expr "$HEADER_SIZE" + 0)
SEG1_SIZE=$(expr "$SEG1_SIZE" + 0)
SEG2_SIZE=$(expr "$SEG2_SIZE" + 0)
INSTALLER_NAME="@NAME@"
INSTALLER_VER="@VERSION@"
PYTHON_DIST="@PYTHON_DIST@"
BASE_DISTS="@BASE_DISTS@"
PREFIX="${HOME:-/opt}/@DEFAULT_DIR@"
BATCH=0
FORCE=0
KEEP_PKGS=0
SKIP_SCRIPTS=0
TEST=0

usage() {
    cat <<EOF
usage: $0 [options]

Installs ${INSTALLER_NAME} ${INSTALLER_VER} (lab test double of conda, built on py-rattler)

-b           run install in batch mode (without manual intervention),
             it is expected the license terms (if any) are agreed upon
-f           no error if install prefix already exists
-h           print this help message and exit
-p PREFIX    install prefix, defaults to ${PREFIX}, must not contain spaces.
-s           skip running pre/post-link/install scripts
-u           update an existing installation
-k           keep the pkgs/ directory (package cache)
-t           run package tests after installation (may install conda-build)
EOF
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
        s) SKIP_SCRIPTS=1 ;;
        t) TEST=1 ;;
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
    printf "\nWelcome to %s %s (lab test double of conda, built on py-rattler)\n\n" "$INSTALLER_NAME" "$INSTALLER_VER"
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
UPDATE=0
if [ -e "$PREFIX/conda-meta/history" ]; then UPDATE=1; fi

if ! mkdir -p "$PREFIX"; then
    echo "ERROR: Could not create directory: '$PREFIX'" >&2
    exit 1
fi
PREFIX=$(cd "$PREFIX" && pwd -P)
echo "PREFIX=$PREFIX"

# free space check (payload unpacked is roughly 4x the compressed size)
need_kb=$(( (SEG1_SIZE + SEG2_SIZE) * 4 / 1024 ))
avail_kb=$(df -Pk "$PREFIX" 2>/dev/null | awk 'NR==2 {print $4}')
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt "$need_kb" ]; then
    echo "ERROR: Not enough disk space in '$PREFIX': need ${need_kb} KB, have ${avail_kb} KB" >&2
    exit 1
fi

echo "Unpacking payload ..."
mkdir -p "$PREFIX/pkgs" || exit 1
STAGE="$PREFIX"
OFF1=$((HEADER_SIZE + 1))
OFF2=$((HEADER_SIZE + SEG1_SIZE + 1))
if ! tail -c "+$OFF1" "$THIS_PATH" | head -c "$SEG1_SIZE" | gzip -dc | tar -xf - -C "$STAGE"; then
    echo "ERROR: could not unpack the installer payload (base)" >&2; exit 1
fi
if ! tail -c "+$OFF2" "$THIS_PATH" | head -c "$SEG2_SIZE" | gzip -dc | tar -xf - -C "$STAGE"; then
    echo "ERROR: could not unpack the installer payload (labconda)" >&2; exit 1
fi

BOOT_PY="$STAGE/pkgs/$PYTHON_DIST/bin/python3.11"
BOOT_PATH=""
for d in $BASE_DISTS; do
    for sp in "$STAGE/pkgs/$d/lib/python3.11/site-packages" "$STAGE/pkgs/$d/site-packages"; do
        if [ -d "$sp" ]; then BOOT_PATH="${BOOT_PATH:+$BOOT_PATH:}$sp"; fi
    done
done

echo "Installing base environment ..."
set -- --prefix "$PREFIX" --payload "$STAGE/pkgs" --installer-name "$INSTALLER_NAME" \
    --installer-version "$INSTALLER_VER" --cmd "$THIS_PATH"
if [ "$UPDATE" = "1" ]; then set -- "$@" --update; fi
if [ "$SKIP_SCRIPTS" = "1" ]; then set -- "$@" --skip-scripts; fi
if ! (unset PYTHONHOME CONDARC CONDA_PKGS_DIRS; PYTHONPATH="$BOOT_PATH" PYTHONNOUSERSITE=1 \
        PYTHONDONTWRITEBYTECODE=1 exec "$BOOT_PY" -s -m labconda.installer "$@"); then
    echo "ERROR: could not install packages into '$PREFIX'" >&2
    exit 1
fi

if [ "$KEEP_PKGS" = "0" ]; then
    # drop the package cache's contents, keep an empty (writable) pkgs/ like Miniconda
    find "$PREFIX/pkgs" -mindepth 1 -maxdepth 1 ! -name urls.txt -exec rm -rf {} +
    : > "$PREFIX/pkgs/urls.txt"
fi

echo "installation finished."
if [ "$BATCH" = "0" ]; then
    printf "\nThis lab installer never edits shell startup files. To use it:\n  . %s/etc/profile.d/conda.sh\n" "$PREFIX"
fi
exit 0
# ---- payload follows ----
