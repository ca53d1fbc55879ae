#!/usr/bin/env bash
# ci/engage-real.sh — deploy our Engage extension with real Engage, built from its source.
#
#   ci/engage-real.sh [--keep] [--work DIR] [--only NAME]... ENGAGE_SRC [DIST]
#
# From an Engage source checkout ENGAGE_SRC (never modified: everything happens on a copy):
#   1. builds Engage's config engine (OCaml + C++, `config_src/`), with the three patches of
#      ci/engage_real/patches/ that today's OCaml (4.13) and g++ (12) need (each says what and why);
#   2. fills a package cache with what Engage's `bootstrap.py --never-download` installs (virtualenv,
#      nose, pycrypto) and a minimal stand-in for the unpublished `engage_utils`
#      (ci/engage_real/engage_utils/, packed here);
#   3. installs the extension DIST/datablox (default: target/dist, made by `cargo xtask dist`) with
#      Engage's `install_extension.py`, bootstraps a deployment home with `bootstrap.py`;
#   4. deploys with Engage's `deployer`: the caretaker's install spec, then each block of the
#      extension from a spec naming only its key inside `dynamic-host *`, each into a fresh copy of
#      the bootstrapped home; then the node scenario (the caretaker's adapter deploys every block
#      into one home);
#   5. prints one line per check (OK/FAILED), Engage's own error for each failure, and what it
#      checked. Exit status: 0 all checks OK, 1 a check failed, 2 usage or set-up error.
# Steps 3-5 are ci/engage_real/deploy.py (Python 3), run in a private mount namespace.
#
# Not part of `cargo test` and not runnable in CI: Engage's source is in no package registry, and the
# set-up step downloads virtualenv, nose and pycrypto from PyPI (once, into WORK/cache). Needs root
# (it runs Engage in a private mount namespace, see `present_host_as_ubuntu`), the Debian packages
# `ocaml ocaml-findlib` (ocamlopt, ocamllex, ocamlyacc), g++, make, and Python 2.7 at $PYTHON27.
#
# Re-runs reuse WORK/cache (the built config engine, keyed by the config_src sources and the
# patches; the downloaded packages; the base Python 2.7 environment), so only the deployments run.
set -euo pipefail

PYTHON27=${PYTHON27:-/root/.pyenv/versions/2.7.18/bin/python2.7}
# Versions fetched into the package cache. virtualenv 16.x is the last that prints a bare version
# number (bootstrap.py parses `virtualenv --version` as dotted integers) and runs on Python 2.7;
# bootstrap.py looks for exactly `nose-1.0.0.tar.gz` and `pycrypto-2.3*.tar.gz`.
VIRTUALENV_VERSION=16.7.12
NOSE_VERSION=1.0.0
PYCRYPTO_VERSION=2.3
# Engage keys a host by its OS; our blocks run inside `ubuntu-linux 14.04` (or `mac-osx`).
PRESENTED_DISTRIB_ID=Ubuntu
PRESENTED_DISTRIB_RELEASE=14.04

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SCRIPT")/engage_real

usage() {
    cat <<'EOF'
Usage: ci/engage-real.sh [OPTIONS] ENGAGE_SRC [DIST]

Deploy the Datablox Engage extension with real Engage built from the source checkout ENGAGE_SRC.
DIST is the output of `cargo xtask dist` (default: target/dist); its `datablox/` is installed.

Options:
  --keep        keep the run directory (deployment homes, logs) and print its path
  --work DIR    work and cache directory (default: target/engage-real)
  --only NAME   check only this (`installer-config`, `caretaker` or a block's key name); repeatable
  -h, --help    print this help

Exit status: 0 every deployment succeeded, 1 a deployment failed, 2 usage or set-up error.
EOF
}

die() {
    printf 'error: %s\n' "$1" >&2
    if [[ $# -gt 1 ]]; then printf 'help: %s\n' "$2" >&2; fi
    exit 2
}

log() { printf '==> %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Step 1: the config engine.

# Applies the patches of ci/engage_real/patches/ to a copy of config_src; a patch that does not
# apply is a set-up error. Their blank context lines carry no leading space (the repository keeps
# no trailing whitespace), hence `patch -l`. The camlmsat patch needs camlmsat.ml, which Engage
# lacks: an implementation with the same externals as its interface, i.e. a copy of camlmsat.mli.
patch_config_src() {
    local dir=$1 p
    cp "$dir/3rdparty/camlmsat/camlmsat.mli" "$dir/3rdparty/camlmsat/camlmsat.ml"
    for p in "$HERE"/patches/*.patch; do
        patch -s -l -p1 -d "$dir" <"$p" || return 1
    done
}

# Prints the path of the built configurator, building it when the cache has none for these sources.
build_config_engine() {
    local key build out
    # The cache key: the config engine's sources, the patches and how they are applied.
    key=$( (cd "$ENGAGE_SRC" && find config_src buildutils/get_platform.sh -type f -print0 | LC_ALL=C sort -z \
            | xargs -0 sha256sum; cd "$HERE/patches" && sha256sum ./*.patch; declare -f patch_config_src) \
            | sha256sum | cut -c1-16)
    out="$CACHE/configurator-$key"
    if [[ -x $out ]]; then
        log "config engine: cached ($out)"
        printf '%s\n' "$out"
        return
    fi
    log "config engine: building from $ENGAGE_SRC/config_src (patched copy, log in $CACHE/config-build.log)"
    build="$CACHE/config-build"
    rm -rf "$build"
    mkdir -p "$build"
    cp -r "$ENGAGE_SRC/config_src" "$ENGAGE_SRC/buildutils" "$build/"
    patch_config_src "$build/config_src" || die "the config engine patches do not apply to $ENGAGE_SRC/config_src" \
        "the patches of ci/engage_real/patches/ were written against cash2one/engage; update them for this checkout"
    if ! (cd "$build/config_src" && ENGAGE_CODE_HOME="$build" make config) >"$CACHE/config-build.log" 2>&1; then
        tail -n 30 "$CACHE/config-build.log" >&2
        die "building Engage's config engine failed (log: $CACHE/config-build.log)" \
            "install the Debian packages ocaml ocaml-findlib g++ make"
    fi
    cp "$build/config_src/config/c_wrapper/configurator" "$out.partial"
    chmod 755 "$out.partial"
    mv "$out.partial" "$out"
    rm -rf "$build"
    # Only the newest build is kept.
    find "$CACHE" -maxdepth 1 -name 'configurator-*' ! -path "$out" -delete
    printf '%s\n' "$out"
}

# ---------------------------------------------------------------------------------------------
# Step 2: the package cache and the base Python 2.7 environment.

fetch_packages() {
    local pkgs="$CACHE/sw_packages"
    mkdir -p "$pkgs"
    local want=("virtualenv-$VIRTUALENV_VERSION.tar.gz" "nose-$NOSE_VERSION.tar.gz" "pycrypto-$PYCRYPTO_VERSION.tar.gz")
    local missing=0 f
    for f in "${want[@]}"; do [[ -f $pkgs/$f ]] || missing=1; done
    if [[ $missing == 1 ]]; then
        # The only network access: sources from PyPI, into the cache, once.
        log "package cache: downloading virtualenv, nose, pycrypto from PyPI into $pkgs"
        "$PYTHON27" -m pip download --disable-pip-version-check --no-deps --no-binary :all: -d "$pkgs" \
            "virtualenv==$VIRTUALENV_VERSION" "nose==$NOSE_VERSION" "pycrypto==$PYCRYPTO_VERSION" >&2 \
            || die "downloading the bootstrap packages from PyPI failed" \
                "run once with network access, or put ${want[*]} into $pkgs"
    fi
    for f in "${want[@]}"; do [[ -f $pkgs/$f ]] || die "$pkgs/$f is missing after the download"; done
}

# A Python 2.7 environment with `virtualenv` beside `python`: bootstrap.py looks for virtualenv in
# the directory of the Python it is given (-x), and the base Python must stay untouched.
make_base_python() {
    local base="$CACHE/py27"
    if [[ -x $base/bin/python && -x $base/bin/virtualenv ]]; then
        return
    fi
    log "base Python: virtualenv $VIRTUALENV_VERSION environment at $base"
    local unpack="$CACHE/virtualenv-src"
    rm -rf "$unpack" "$base"
    mkdir -p "$unpack"
    tar -xzf "$CACHE/sw_packages/virtualenv-$VIRTUALENV_VERSION.tar.gz" -C "$unpack"
    "$PYTHON27" "$unpack/virtualenv-$VIRTUALENV_VERSION/virtualenv.py" --no-download "$base" >&2
    "$base/bin/pip" install --disable-pip-version-check --no-index --no-deps --no-build-isolation -q \
        "$CACHE/sw_packages/virtualenv-$VIRTUALENV_VERSION.tar.gz" >&2
    rm -rf "$unpack"
}

# Packs the engage_utils stand-in (ci/engage_real/engage_utils/) from a copy in $1 as
# $2/engage_utils-1.0.tar.gz, the file name bootstrap.py looks for. `engage_utils`
# (github.com/genforma/engage-utils) was never published to a registry; the stand-in provides only
# the names Engage's engine, its base drivers and our drivers import, written from how Engage calls
# them, so a code path needing another name fails with ImportError/AttributeError naming it.
make_engage_utils() {
    local src=$1/engage_utils-1.0 dest=$2
    rm -rf "$src"
    mkdir -p "$1"
    cp -r "$HERE/engage_utils" "$src"
    (cd "$src" && "$PYTHON27" setup.py -q sdist --formats=gztar -d "$dest" >/dev/null 2>&1)
    [[ -f $dest/engage_utils-1.0.tar.gz ]] || die "packing the engage_utils stand-in failed"
}

# ---------------------------------------------------------------------------------------------
# Steps 3-5 run inside a private mount namespace (see present_host_as_ubuntu).

main() {
    local keep=0 work="" only=() args=()
    while [[ $# -gt 0 ]]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        --keep) keep=1 ;;
        --work) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; work=$2; shift ;;
        --only) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; only+=("$2"); shift ;;
        -*) printf 'error: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
        *) args+=("$1") ;;
        esac
        shift
    done
    [[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || { usage >&2; exit 2; }
    local repo
    repo=$(cd "$(dirname "$SCRIPT")/.." && pwd)
    ENGAGE_SRC=$(readlink -f "${args[0]}")
    local dist=${args[1]:-$repo/target/dist}
    [[ -f $ENGAGE_SRC/bootstrap.py && -d $ENGAGE_SRC/config_src && -f $ENGAGE_SRC/install_extension.py ]] \
        || die "$ENGAGE_SRC is not an Engage source checkout (no bootstrap.py, install_extension.py, config_src/)" \
            "git clone https://github.com/genforma/engage (or cash2one/engage) and pass its path"
    [[ -f $dist/datablox/version.txt ]] || die "$dist/datablox/version.txt not found" \
        "run \`cargo xtask dist\` first, or pass the directory it wrote as DIST"
    dist=$(readlink -f "$dist")
    [[ $(id -u) == 0 ]] || die "must run as root (Engage runs in a private mount namespace)" "run with sudo"
    local tool
    for tool in ocamlopt ocamlc ocamllex ocamlyacc g++ gcc make patch unshare mount tar sha256sum; do
        command -v "$tool" >/dev/null || die "\`$tool\` not found" "apt-get install ocaml ocaml-findlib g++ make patch util-linux"
    done
    [[ -x $PYTHON27 ]] || die "Python 2.7 not found at $PYTHON27" "set PYTHON27 to a Python 2.7 interpreter"

    work=$(mkdir -p "${work:-$repo/target/engage-real}" && cd "${work:-$repo/target/engage-real}" && pwd)
    CACHE=$work/cache
    mkdir -p "$CACHE"

    local configurator
    configurator=$(build_config_engine)
    fetch_packages
    make_base_python

    # The run directory: a copy of Engage's sources (install_extension.py writes into it), the
    # deployment home, the logs.
    local run
    run=$(mktemp -d "$work/run.XXXXXX")
    log "run directory: $run"
    mkdir -p "$run/engage/bin" "$run/engage/sw_packages"
    (cd "$ENGAGE_SRC" && tar -cf - --exclude=./config_src --exclude=./sw_packages --exclude=./bin . ) \
        | tar -xf - -C "$run/engage"
    cp "$configurator" "$run/engage/bin/configurator-linux64"
    cp "$CACHE/sw_packages/nose-$NOSE_VERSION.tar.gz" "$CACHE/sw_packages/pycrypto-$PYCRYPTO_VERSION.tar.gz" \
        "$run/engage/sw_packages/"
    make_engage_utils "$run/engage-utils-src" "$run/engage/sw_packages"

    local rc=0
    unshare -m -- bash "$SCRIPT" --inner "$run" "$ENGAGE_SRC" "$dist" "$CACHE/py27/bin/python" "${only[@]}" || rc=$?
    if [[ $keep == 1 ]]; then
        log "kept $run"
    else
        rm -rf "$run"
    fi
    return "$rc"
}

# Engage (its engage_utils.system_info) names the host's OS resource from /etc/lsb-release, and
# knows Ubuntu and Mac OS X, not Debian. In this process's own mount namespace (unshare -m, made
# private so nothing propagates back), an overlay on /etc adds an lsb-release saying Ubuntu 14.04.
# The machine's /etc is not modified: the overlay's upper layer lives in the run directory and
# disappears with the namespace.
present_host_as_ubuntu() {
    local run=$1
    mount --make-rprivate /
    mkdir -p "$run/etc-upper" "$run/etc-work"
    printf 'DISTRIB_ID=%s\nDISTRIB_RELEASE=%s\nDISTRIB_DESCRIPTION="presented by ci/engage-real.sh"\n' \
        "$PRESENTED_DISTRIB_ID" "$PRESENTED_DISTRIB_RELEASE" >"$run/etc-upper/lsb-release"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$run/etc-upper,workdir=$run/etc-work" /etc
}

if [[ ${1:-} == --inner ]]; then
    # Inside the private mount namespace: RUN ENGAGE_SRC DIST BASE_PYTHON [ONLY...]
    shift
    present_host_as_ubuntu "$1"
    exec python3 "$HERE/deploy.py" "$@"
else
    main "$@"
fi
