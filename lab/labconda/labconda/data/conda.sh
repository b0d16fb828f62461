# labconda (lab test double of conda, built on py-rattler): POSIX shell helpers.
# Source it: `. @PREFIX@/etc/profile.d/conda.sh`. Nothing edits shell rc files.
export CONDA_EXE='@PREFIX@/bin/conda'
export _CE_M=''
export _CE_CONDA=''
export CONDA_PYTHON_EXE='@PREFIX@/bin/python'

__conda_exe() (
    "$CONDA_EXE" "$@"
)

__labconda_deactivate() {
    if [ -n "${CONDA_PREFIX:-}" ]; then
        PATH=$(printf '%s' "$PATH" | awk -v RS=: -v ORS=: -v p="$CONDA_PREFIX/bin" '$0 != p' | sed 's/:$//')
        export PATH
        unset CONDA_PREFIX CONDA_DEFAULT_ENV
        export CONDA_SHLVL=0
    fi
}

__labconda_activate() {
    __lc_prefix=$("$CONDA_EXE" _resolve_prefix "${1:-base}") || return 1
    __labconda_deactivate
    export CONDA_PREFIX="$__lc_prefix"
    export CONDA_DEFAULT_ENV="${1:-base}"
    export CONDA_SHLVL=1
    export PATH="$__lc_prefix/bin:$PATH"
    unset __lc_prefix
}

conda() {
    case "${1:-}" in
        activate) shift; __labconda_activate "$@" ;;
        deactivate) __labconda_deactivate ;;
        *) __conda_exe "$@" ;;
    esac
}

if [ -z "${CONDA_SHLVL+x}" ]; then
    export CONDA_SHLVL=0
    case ":$PATH:" in
        *":@PREFIX@/condabin:"*) ;;
        *) export PATH="@PREFIX@/condabin:$PATH" ;;
    esac
fi
