#!/usr/bin/env bash
# fetch-deps.sh: downloads the Debian packages that the GPU check (tests/gpu/run.sh) needs and
# the device machine lacks, into <repo>/.gpu-deps/ (ignored through .git/info/exclude).
#
# Run HERE (Debian 12 bookworm, amd64, as root, with the Debian mirror reachable), before the
# device call; from any directory:
#     tests/gpu/fetch-deps.sh            tier "model", plus tier "job" if the total fits the limit
#     tests/gpu/fetch-deps.sh --job      tier "job" even over the limit
#     tests/gpu/fetch-deps.sh --no-job   tier "model" only (removes a fetched tier "job")
# then, as the session's first device call:
#     run(command="tests/gpu/run.sh", carry=[".gpu-deps"], timeout_s=540)
#
# Tiers (.gpu-deps/<tier>/*.deb, listed in .gpu-deps/manifest.txt):
#   model  OpenBLAS (pthread flavour), GoogleTest (static libraries + GTestConfig.cmake),
#          nlohmann-json: what the model library and its tests need.
#   job    the whole project: Open MPI, HDF5 (serial), Boost.Program_options, COIN-OR CBC,
#          Google Benchmark, pkg-config, and the -dev links coinutils.pc asks for (-lbz2 -lz).
# Each tier is its seed packages plus their Depends/Pre-Depends, recursively (the first
# alternative, unless one is already chosen or provided), except
#   - packages of every Debian/Ubuntu base system (BASE below: glibc, the GCC runtime, zlib,
#     apt's GnuTLS stack, util-linux's libraries, ...): the device machine has them;
#   - PRUNE below: toolchains (the device has its compilers; nothing here is Fortran), perl,
#     autotools, javascript, ssh clients (mpirun starts its ranks locally), hwloc's optional
#     plugins (X11/OpenCL/libxml2+ICU), GoogleTest's sources;
#   - the -dev dependencies of -dev packages (headers of libraries the project never
#     includes): the -dev packages it does need are seeds.
# The job tier is included when working tree + both tiers <= SWARM_GPU_DEPS_LIMIT_MIB
# (default 56 MiB: the device tool carries 64 MiB in all, 8 MiB left for the tree to grow).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dest=$repo/.gpu-deps
limit_mib=${SWARM_GPU_DEPS_LIMIT_MIB:-56}
job=auto
why="--no-job"
for arg in "$@"; do
  case $arg in
    --job) job=yes ;;
    --no-job) job=no ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-deps.sh: unknown argument '$arg' (--job, --no-job)" >&2; exit 2 ;;
  esac
done

MODEL_SEEDS=(libopenblas0-pthread libopenblas-pthread-dev libgtest-dev nlohmann-json3-dev)
JOB_SEEDS=(openmpi-bin libopenmpi-dev libhdf5-dev
           libboost-program-options1.74-dev libboost1.74-dev
           coinor-libcbc-dev coinor-libcgl-dev coinor-libclp-dev coinor-libosi-dev coinor-libcoinutils-dev
           libbenchmark-dev pkgconf libbz2-dev zlib1g-dev)
BASE='libc6|libgcc-s1|libstdc\+\+6|zlib1g|gcc-[0-9]+-base|libcrypt1|libacl1|libattr1|libaudit1|libaudit-common'
BASE+='|libblkid1|libmount1|libsmartcols1|libuuid1|libbz2-1\.0|liblzma5|libzstd1|liblz4-1|libxxhash0'
BASE+='|libcap-ng0|libcap2|libpam0g|libpam-modules|libpam-modules-bin|libpam-runtime|libselinux1|libsepol2'
BASE+='|libsemanage2|libsemanage-common|libpcre2-8-0|libtinfo6|libdb5\.3|libsystemd0|libudev1|libseccomp2'
BASE+='|libgcrypt20|libgpg-error0|libmd0|libgmp10|libgnutls30|libnettle8|libhogweed6|libp11-kit0|libtasn1-6'
BASE+='|libidn2-0|libunistring2|libffi8|debconf|debconf-2\.0|cdebconf|dpkg|perl-base|debianutils|adduser'
BASE+='|passwd|init-system-helpers|lsb-base|sysvinit-utils|libc-bin|usrmerge|usr-is-merged'
PRUNE='gcc|gcc-[0-9]+|g\+\+|g\+\+-[0-9]+|cpp|cpp-[0-9]+|gfortran|gfortran-[0-9]+|libgfortran-[0-9]+-dev|perl'
PRUNE+='|perl-modules-[0-9.]+|libperl[0-9.]+|autoconf|automake|autotools-dev|m4|libtool|libjs-.*'
PRUNE+='|openssh-client|ssh-client|rsh-client|rsh-redone-client|libhwloc-plugins|googletest'

# ---------------------------------------------------------------------------------------------
APT=(-o APT::Sandbox::User=root)
arch=$(dpkg --print-architecture)
if [[ $arch != amd64 ]]; then
  # The device machine is x86-64: resolve and download amd64 packages from separate lists.
  APT+=(-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Dir::State::Lists=/tmp/gpu-deps-amd64-lists)
  mkdir -p /tmp/gpu-deps-amd64-lists/partial
  apt-get "${APT[@]}" update -qq
fi
if ! apt-cache "${APT[@]}" show --no-all-versions libopenblas0-pthread >/dev/null 2>&1; then
  echo "fetch-deps.sh: no package lists for libopenblas0-pthread: running apt-get update" >&2
  apt-get "${APT[@]}" update -qq
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The ignore rule goes first, so that the size of the working tree below leaves .gpu-deps out.
exclude=$(git -C "$repo" rev-parse --path-format=absolute --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu-deps/' "$exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$exclude"

declare -A chosen=()                         # package or virtual name -> 1, across both tiers
declare -A known=() version=() size=() provides=()
# info NAME...: Version, Size and Provides of the candidates, one apt-cache call for the new names.
info() {
  local need=() n v s p
  for n in "$@"; do [[ -n ${known[$n]:-} ]] || { need+=("$n"); known[$n]=no; }; done
  ((${#need[@]})) || return 0
  while IFS=$'\t' read -r n v s p; do
    known[$n]=yes; version[$n]=$v; size[$n]=$s; provides[$n]=$p
  done < <(apt-cache "${APT[@]}" show --no-all-versions "${need[@]}" 2>/dev/null | awk '
    function out() { if (n != "") print n "\t" v "\t" s "\t" p; n = v = s = p = "" }
    /^Package: / { n = $2 } /^Version: / { v = $2 } /^Size: / { s = $2 }
    /^Provides: / { p = substr($0, 11); gsub(/\([^)]*\)/, "", p); gsub(/[ ,]+/, " ", p) }
    /^$/ { out() } END { out() }')
}
choose() { local v; chosen[$1]=1; for v in ${provides[$1]}; do chosen[$v]=1; done; }
# One line per dependency group of the packages given: its alternatives, a virtual package
# followed by its first provider.
dep_groups() {
  apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances "$@" | awk '
    function flush() { if (g != "") print g; g = "" }
    /^ *\|?(Pre)?Depends:/ { alt = ($1 ~ /^\|/); n = $2; virt = (n ~ /^</); gsub(/[<>]/, "", n)
                             if (!cont) flush(); g = g " " n; cont = alt; pending = virt; next }
    /^    / { if (pending) { g = g " " $1; pending = 0 }; next }
    /^[^ ]/ { flush(); cont = 0 }
    END { flush() }'
}
# resolve SEED...: prints the closure, level by level, marking everything chosen.
resolve() {
  local level=() next=() groups=() p a grp ok pick
  info "$@"
  for p in "$@"; do
    [[ ${known[$p]} == yes ]] || { echo "fetch-deps.sh: no package $p" >&2; exit 1; }
    [[ -n ${chosen[$p]:-} ]] || { choose "$p"; level+=("$p"); }
  done
  while ((${#level[@]})); do
    printf '%s\n' "${level[@]}"
    mapfile -t groups < <(dep_groups "${level[@]}")
    # shellcheck disable=SC2046  # the alternatives of every group, split into words
    info $(printf '%s ' "${groups[@]}")
    next=()
    for grp in "${groups[@]}"; do
      read -r -a alts <<<"$grp"
      ok='' pick=''
      for a in "${alts[@]}"; do
        if [[ -n ${chosen[$a]:-} || $a =~ ^($BASE|$PRUNE)$ || $a == *-dev ]]; then ok=1; break; fi
        [[ -z $pick && ${known[$a]} == yes ]] && pick=$a
      done
      [[ -n $ok ]] && continue
      [[ -n $pick ]] || { echo "fetch-deps.sh: no candidate for the dependency '$grp'" >&2; exit 1; }
      choose "$pick"; next+=("$pick")
    done
    level=("${next[@]}")
  done
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
tier_size() { local s=0 p; for p in "$@"; do s=$((s + ${size[$p]})); done; echo "$s"; }

# fetch TIER PACKAGE...: .gpu-deps/TIER holds exactly these packages' candidate versions.
fetch() {
  local tier=$1; shift
  local dir=$dest/$tier p f key
  declare -A want=()
  mkdir -p "$dir"
  for p in "$@"; do want["$p=${version[$p]}"]=1; done
  for f in "$dir"/*.deb; do
    [[ -e $f ]] || continue
    key=$(dpkg-deb -f "$f" Package)=$(dpkg-deb -f "$f" Version)
    if [[ -n ${want[$key]:-} ]]; then unset "want[$key]"; else rm -f "$f"; fi
  done
  if ((${#want[@]})); then
    (cd "$dir" && apt-get "${APT[@]}" download -qq "${!want[@]}")
  fi
  for p in "$@"; do echo "$tier $p ${version[$p]} ${size[$p]}"; done >>"$dest/manifest.txt"
}

# Not in a subshell: the job tier's resolution sees what the model tier chose.
resolve "${MODEL_SEEDS[@]}" >"$tmp/model"
mapfile -t model_pkgs <"$tmp/model"
resolve "${JOB_SEEDS[@]}" >"$tmp/job"
mapfile -t job_pkgs <"$tmp/job"
model_bytes=$(tier_size "${model_pkgs[@]}")
job_bytes=$(tier_size "${job_pkgs[@]}")

# What travels besides .gpu-deps: tracked and untracked-not-ignored files, and shared/.
tree_bytes=$(cd "$repo" && { git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null || true; } | awk 'END { print $1 + 0 }')
[[ -d $repo/shared ]] && tree_bytes=$((tree_bytes + $(du -sb "$repo/shared" | cut -f1)))
limit_bytes=$((limit_mib * 1048576))
all_bytes=$((tree_bytes + model_bytes + job_bytes))
if [[ $job == auto ]]; then
  if ((all_bytes <= limit_bytes)); then job=yes; else job=no; why="working tree + both tiers $(mib "$all_bytes") > limit $limit_mib MiB (SWARM_GPU_DEPS_LIMIT_MIB)"; fi
fi

mkdir -p "$dest"
rm -f "$dest/manifest.txt"
echo "# tier package version size (tests/gpu/fetch-deps.sh, $(date -u +%F))" >"$dest/manifest.txt"
fetch model "${model_pkgs[@]}"
if [[ $job == yes ]]; then
  fetch job "${job_pkgs[@]}"
else
  rm -rf "$dest/job"
fi

on_disk() { if [[ -d $1 ]]; then du -cb "$1"/*.deb | awk 'END { print $1 }'; else echo 0; fi; }
model_disk=$(on_disk "$dest/model")
job_disk=$(on_disk "$dest/job")
carried=$(du -sb "$dest" | cut -f1)
total=$((tree_bytes + carried))
echo "tier model: ${#model_pkgs[@]} packages, $(mib "$model_disk") (${model_pkgs[*]})"
if [[ $job == yes ]]; then
  echo "tier job:   ${#job_pkgs[@]} packages, $(mib "$job_disk")"
else
  echo "tier job:   ${#job_pkgs[@]} packages, $(mib "$job_bytes"): LEFT OUT ($why); --job fetches it anyway"
fi
echo "working tree (travels too): $(mib "$tree_bytes")"
echo "total carried by run(carry=[\".gpu-deps\"]): $(mib "$total") of the 64 MiB a device call takes"
if ((total > 64 * 1048576)); then
  echo "fetch-deps.sh: over 64 MiB: the device call would be refused; rerun with --no-job" >&2
  exit 1
fi
