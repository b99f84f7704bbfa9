#!/usr/bin/env bash
# run.sh: the GPU check, on a lent GPU machine (one H100 or H200), in one device call.
#
# Prepare HERE first (Debian 12, as root):   tests/gpu/fetch-deps.sh
# Then, as the session's first device call (from the repository root):
#     run(command="tests/gpu/run.sh", carry=[".gpu-deps"], timeout_s=540)
# A rerun of one stage only:  run(command="SWARM_GPU_STAGES=job tests/gpu/run.sh", ...)
#
# Stages, one PASS/FAIL/SKIP line each, then OVERALL; exit status 1 on any FAIL:
#   env    unpacks every .gpu-deps/*/*.deb with dpkg -x into /tmp/gpu-deps (never into /),
#          recreates their update-alternatives links there, points PATH, LD_LIBRARY_PATH,
#          CMAKE_PREFIX_PATH, PKG_CONFIG_PATH and OPAL_PREFIX at it; prints nvidia-smi, nvcc.
#   model  tests/gpu/CMakeLists.txt (the model library with its CUDA backend, and the targets
#          of tests/model and bench/model): test_model_cuda (must run: all skipped is a FAIL),
#          test_model_kernels, test_model; one bench_model_block line; the bench_model_block_cuda
#          table (GPU block vs cuBLAS, f32 and bf16).
#   job    only when .gpu-deps/job was carried: the whole project with -DSWARM_CUDA=ON
#          (swarm_pipe, bench_transport); generation on 1 rank with --model.backend cuda on each
#          tests/data/model fixture equals its expected.json; 2 ranks sharing the GPU over MPI
#          (--run.transport mpi --model.backend cuda) answer a prompts file as the CPU backend
#          does; bench_transport smoke (MPI, 2 ranks); realised_vs_predicted figures when
#          python3 has h5py (informational).
# Logs: run.log, env.log, model.log, job.log in $OUT when OUT is set, else /tmp/gpu-check/logs.
# Environment:
#   SWARM_GPU_DRY_RUN=1   for a check without a GPU (here): test_model_cuda may skip every test,
#                         the job stage's "cuda" runs use the cpu backend, and every dependency
#                         must be found under the unpacked .gpu-deps (the device may have its own)
#   SWARM_GPU_STAGES      stages to run after env (default "model job")
#   SWARM_GPU_DEADLINE_S  the script ends its steps by then (default 500 s: inside timeout_s=540)
#   SWARM_GPU_PREFIX (/tmp/gpu-deps), SWARM_GPU_WORK (/tmp/gpu-check), JOBS (nproc),
#   SWARM_CUDA_ARCHITECTURES (90)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
P=${SWARM_GPU_PREFIX:-/tmp/gpu-deps}
W=${SWARM_GPU_WORK:-/tmp/gpu-check}
LOG=${OUT:-$W/logs}
J=${JOBS:-$(nproc)}
ARCH=${SWARM_CUDA_ARCHITECTURES:-90}
DRY=${SWARM_GPU_DRY_RUN:-0}
STAGES=${SWARM_GPU_STAGES:-model job}
DEADLINE=${SWARM_GPU_DEADLINE_S:-500}   # seconds: every step's time limit shrinks to end by then
MA=x86_64-linux-gnu
[[ $P == /* && $P != / && $W == /* && $W != / ]] || { echo "run.sh: SWARM_GPU_PREFIX and SWARM_GPU_WORK must be absolute, not /" >&2; exit 2; }
mkdir -p "$W" "$LOG"
: >"$LOG/run.log"

say() { printf '%s\n' "$*" | tee -a "$LOG/run.log"; }
results=()
failed=0            # checks failed in the current stage
logf=$LOG/env.log   # the current stage's log
finished=0
err_line=
trap 'err_line=$LINENO' ERR
trap 'if ((finished == 0)); then say "FAIL run.sh stopped early (status $?, near line ${err_line:-?}); see $LOG"; say "OVERALL FAIL"; fi' EXIT

ok()   { say "  ok   $*"; }
bad()  { say "  FAIL $*"; failed=$((failed + 1)); }
info() { say "  info $*"; }
show_tail() { [[ -f $1 ]] && tail -n "${2:-25}" "$1" | sed 's/^/       | /' | tee -a "$LOG/run.log"; return 0; }
# budget SECONDS: that, or less where the deadline is nearer (at least 1).
budget() { local left=$((DEADLINE - SECONDS - 15)); ((left < $1)) && { ((left > 1)) && echo "$left" || echo 1; } || echo "$1"; }
# step WHAT SECONDS CMD...: runs CMD with its output in the stage log; ok/FAIL line.
step() {
  local what=$1 limit t0=$SECONDS rc=0
  limit=$(budget "$2")
  shift 2
  echo "## $what: $*" >>"$logf"
  timeout "$limit" "$@" >>"$logf" 2>&1 || rc=$?
  if ((rc == 0)); then ok "$what ($((SECONDS - t0)) s)"; return 0; fi
  if ((rc == 124)); then bad "$what: timed out after $limit s"; else bad "$what: exit status $rc"; fi
  show_tail "$logf"
  return 1
}
stage_begin() { failed=0; logf=$LOG/$1.log; : >"$logf"; say ""; say "== stage $1"; }
stage_end() {   # NAME [SKIP reason]
  local status
  if [[ ${2:-} == SKIP ]]; then status="SKIP $1: $3"
  elif ((failed == 0)); then status="PASS $1"
  else status="FAIL $1 ($failed checks failed; log $logf)"; fi
  results+=("$status")
  say "$status"
}

# ---------------------------------------------------------------------------------------------
# Stage env: the packages, unpacked into $P.
# ---------------------------------------------------------------------------------------------
deb_member() {   # DEB PREFIX: the name of the archive member data.tar.* or control.tar.*
  ar t "$1" | grep -m1 "^$2\.tar"
}
untar_flag() { case $1 in *.xz) echo -J ;; *.zst) echo --zstd ;; *.gz) echo -z ;; *) echo "" ;; esac; }
unpack() {       # DEB DIR
  if command -v dpkg >/dev/null; then
    dpkg -x "$1" "$2"
  else           # no dpkg: its data archive through ar and tar
    local m
    m=$(deb_member "$1" data)
    # shellcheck disable=SC2046
    ar p "$1" "$m" | tar -x $(untar_flag "$m") -C "$2"
  fi
}
postinst() {     # DEB: the postinst script, if any
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb --ctrl-tarfile "$1" | tar -xO ./postinst 2>/dev/null || true
  else
    local m
    m=$(deb_member "$1" control)
    # shellcheck disable=SC2046
    ar p "$1" "$m" | tar -xO $(untar_flag "$m") ./postinst 2>/dev/null || true
  fi
}
# The links that `update-alternatives --install LINK NAME PATH PRIO [--slave LINK NAME PATH]...`
# in a postinst would make (OpenBLAS's libblas.so.3, cblas.h, libopenblas.so; Open MPI's
# mpirun/mpicxx and include dir; libpsm_infinipath.so.1, hdf5.pc), made inside $P. A group is
# skipped when its master path is not in $P (e.g. the MPI flavours of HDF5) or names a variable.
alternatives() { # DEB: prints how many links it made
  local n=0 words i link target
  while read -r -a words; do
    [[ ${words[*]} == *['$"`']* ]] && continue
    [[ -e $P${words[1]} ]] || continue
    for ((i = 0; i + 1 < ${#words[@]}; i += 2)); do
      link=$P${words[i]} target=$P${words[i + 1]}
      if [[ -e $target && ! -e $link && ! -L $link ]]; then
        mkdir -p "$(dirname "$link")"
        ln -s "$target" "$link"
        n=$((n + 1))
      fi
    done
  done < <(postinst "$1" | sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' | awk '
    { for (i = 1; i <= NF; i++) if ($i == "--install") {
        line = $(i + 1) " " $(i + 3); j = i + 5
        while (j <= NF && $j == "--slave") { line = line " " $(j + 1) " " $(j + 3); j += 4 }
        print line } }')
  echo "$n"
}
fix_links() {    # absolute links re-rooted into $P; -dev links to base libraries to the system's
  local l t name cand d rerooted=0 system=0 dangling=0
  while IFS= read -r -d '' l; do
    t=$(readlink "$l")
    if [[ $t == /* && $t != "$P"/* && -e $P$t ]]; then
      ln -sfn "$P$t" "$l"; rerooted=$((rerooted + 1)); continue
    fi
    [[ -e $l ]] && continue
    # e.g. zlib1g-dev's libz.so -> libz.so.1.2.13: zlib1g itself was not carried (base system):
    # the system's libz.so.1.2.13, else libz.so.1.2, libz.so.1, libz.so.
    name=$(basename "$t") cand=$name
    while [[ $cand == lib*.so* ]]; do
      for d in /usr/lib/$MA /lib/$MA /usr/lib64 /lib64 /usr/lib; do
        if [[ -e $d/$cand ]]; then ln -sfn "$d/$cand" "$l"; system=$((system + 1)); continue 3; fi
      done
      [[ $cand == *.so.* ]] || break
      cand=${cand%.*}
    done
    dangling=$((dangling + 1)); echo "dangling link: $l -> $t" >>"$logf"
  done < <(find "$P" -type l -print0)
  echo "$rerooted re-rooted, $system pointed at the system's libraries, $dangling dangling (listed in env.log)"
}
fix_text() {     # the files that name /usr: pkg-config files, HDF5's compiler scripts
  local f n=0
  while IFS= read -r -d '' f; do
    sed -i -E -e "s#^prefix=/usr\$#prefix=$P/usr#" -e "s#(=|-I|-L|[[:space:]])/usr/#\\1$P/usr/#g" "$f"
    n=$((n + 1))
  done < <(find "$P" -type f -name '*.pc' -print0)
  for f in "$P"/usr/bin/h5cc "$P"/usr/bin/h5c++ "$P"/usr/bin/h5fc; do
    [[ -f $f ]] && { sed -i "s#^prefix=\"/usr\"#prefix=\"$P/usr\"#" "$f"; n=$((n + 1)); }
  done
  echo "$n"
}

stage_begin env
shopt -s nullglob
debs=("$repo"/.gpu-deps/*/*.deb)
have_job=0
job_debs=("$repo"/.gpu-deps/job/*.deb)
((${#job_debs[@]})) && have_job=1
shopt -u nullglob
say "  repo $repo; prefix $P; work $W; logs $LOG; $J jobs; dry run $DRY; stages: $STAGES"
# shellcheck disable=SC1091
say "  $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(uname -r), $(nproc) cores, $(ldd --version 2>&1 | head -1)"
if ((${#debs[@]} == 0)); then
  bad "no .gpu-deps/*/*.deb: run tests/gpu/fetch-deps.sh here first and carry .gpu-deps"
else
  rm -rf "$P"; mkdir -p "$P"
  t0=$SECONDS
  for d in "${debs[@]}"; do unpack "$d" "$P" || bad "unpack $(basename "$d")"; done
  nalt=0
  for d in "${debs[@]}"; do nalt=$((nalt + $(alternatives "$d"))); done
  links=$(fix_links)
  ntext=$(fix_text)
  ok "${#debs[@]} packages unpacked into $P ($(du -sh "$P" | cut -f1), $((SECONDS - t0)) s): $nalt alternatives links; links $links; $ntext files' /usr paths rewritten"
fi

if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
export PATH=$P/usr/bin:$PATH
libdirs=
for d in "$P/usr/lib/$MA" "$P/usr/lib/$MA/openblas-pthread" "$P/usr/lib/$MA/hdf5/serial" "$P/usr/lib/$MA/openmpi/lib" "$P/lib/$MA" "$P/usr/lib"; do
  [[ -d $d ]] && libdirs+=${libdirs:+:}$d
done
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# CMake finds OpenBLAS (libopenblas.so and cblas.h, through the alternatives links in
# usr/lib/<multiarch> and usr/include/<multiarch>), GTest, nlohmann_json, Boost and benchmark
# under this prefix. No CPATH: a global include path would hide a missing include directory.
export CMAKE_PREFIX_PATH=$P/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PKG_CONFIG_PATH=$P/usr/lib/$MA/pkgconfig:$P/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if ((have_job)); then
  export OPAL_PREFIX=$P/usr   # Open MPI, relocated: its components, help files and wrapper data
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
{ echo "PATH=$PATH"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; echo "CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH"
  echo "PKG_CONFIG_PATH=$PKG_CONFIG_PATH"; echo "OPAL_PREFIX=${OPAL_PREFIX:-}"; } >>"$logf"

if [[ -d $P/usr ]]; then   # shared libraries that nothing on this machine provides
  missing=$(find "$P" -type f \( -name '*.so' -o -name '*.so.*' -o -path "$P/usr/bin/*" \) -print0 |
            xargs -0 ldd 2>/dev/null | awk '/=> not found/ { print $1 }' | sort -u | tr '\n' ' ' || true)
  if [[ -n $missing ]]; then info "libraries of the packages that nothing here provides: $missing(plugins may not matter)"
  else ok "every shared library of the packages resolves"; fi
fi

say "  -- nvidia-smi"
if command -v nvidia-smi >/dev/null && nvidia-smi >"$W/nvidia-smi.txt" 2>&1; then
  sed 's/^/  /' "$W/nvidia-smi.txt" | tee -a "$LOG/run.log"
  ok "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -1)"
elif ((DRY)); then
  info "nvidia-smi: none or failed (dry run)"
else
  bad "nvidia-smi: none or failed"; show_tail "$W/nvidia-smi.txt" 5
fi
say "  -- nvcc --version"
if command -v nvcc >/dev/null; then nvcc --version | sed 's/^/  /' | tee -a "$LOG/run.log"; else bad "nvcc: not found"; fi
say "  cmake: $(cmake --version | head -1); ninja: $(ninja --version 2>/dev/null || echo none); c++: $(c++ --version | head -1); python3: $(python3 --version 2>&1)"
cuda_root=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
say "  CUDA libraries in $cuda_root: $(cd "$cuda_root" 2>/dev/null && find -L lib lib64 targets -maxdepth 3 \( -name 'libcudart.so*' -o -name 'libcublas.so*' -o -name 'libnccl.so*' -o -name 'libcudnn.so*' \) 2>/dev/null | sort -u | tr '\n' ' ')"
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
if ((have_job)) && [[ -n $glibc ]] && [[ $(printf '%s\n' "$glibc" 2.36 | sort -V | head -1) != 2.36 ]]; then
  info "glibc $glibc < 2.36: some Debian 12 libraries of the job tier (libevent, Open MPI's) will not load"
fi
stage_end env

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
gpu_backend=cuda
((DRY)) && gpu_backend=cpu

# ---------------------------------------------------------------------------------------------
# Stage model.
# ---------------------------------------------------------------------------------------------
# gtest NAME BINARY [must-run]: runs it with a JSON report; ok/FAIL with the counts.
gtest() {
  local name=$1 bin=$2 must=${3:-} json=$W/$1.json t0=$SECONDS rc=0 counts tests fails skips names
  rm -f "$json"
  echo "## $name" >>"$logf"
  timeout "$(budget 300)" "$bin" --gtest_brief=1 --gtest_output="json:$json" >>"$logf" 2>&1 || rc=$?
  counts=$(python3 - "$json" <<'EOF' 2>>"$logf" || echo "0 0 0 -"
import json, sys
tests = fails = skips = 0
skipped = []
for suite in json.load(open(sys.argv[1])).get("testsuites", []):
    for t in suite.get("testsuite", []):
        if t.get("status") == "NOTRUN":
            continue
        tests += 1
        if t.get("failures"):
            fails += 1
        elif t.get("result") == "SKIPPED":
            skips += 1
            skipped.append(suite["name"] + "." + t["name"])
print(tests, fails, skips, ",".join(skipped) or "-")
EOF
)
  read -r tests fails skips names <<<"$counts"
  local what="$name: $tests tests, $fails failed, $skips skipped ($((SECONDS - t0)) s)"
  if ((rc != 0 || fails > 0 || tests == 0)); then
    bad "$what, exit status $rc"; show_tail "$logf" 30; return 0
  fi
  if [[ -n $must ]] && ((skips == tests)); then
    if ((DRY)); then info "$what: all skipped, as expected without a GPU (SWARM_GPU_DRY_RUN=1)"
    else bad "$what: every test skipped, so the GPU path did not run"; fi
    return 0
  fi
  ok "$what"
  ((skips == 0)) || info "$name skipped: $names"
}

# provenance VAR...: where CMake found each dependency (under $P: from .gpu-deps).
provenance() {
  local cache=$1 v value
  shift
  for v in "$@"; do
    value=$(sed -n "s/^$v:[A-Z]*=//p" "$cache" | head -1)
    if [[ $value == "$P"/* ]]; then ok "$v from .gpu-deps: $value"
    elif ((DRY)); then bad "$v not from .gpu-deps: '$value'"
    else info "$v from this machine: '$value'"; fi
  done
}

stage_model() {
  stage_begin model
  local b=$W/build-model
  rm -rf "$b"
  if step "configure tests/gpu (CUDA architectures $ARCH)" 180 cmake -S tests/gpu -B "$b" "${generator[@]}" \
       -DCMAKE_BUILD_TYPE=Release -DSWARM_CUDA=ON -DSWARM_CUDA_ARCHITECTURES="$ARCH"; then
    grep -- '-- gpu check:' "$logf" | sed 's/^-- /  /' | tee -a "$LOG/run.log"
    provenance "$b/CMakeCache.txt" GTest_DIR nlohmann_json_DIR BLAS_openblas_LIBRARY OPENBLAS_INCLUDE_DIR
    if step "build swarm_model (CUDA), test_model_cuda, test_model_kernels, test_model, bench_model_block" 420 \
         cmake --build "$b" -j "$J"; then
      gtest test_model_cuda "$b/tests/model/test_model_cuda" must-run
      gtest test_model_kernels "$b/tests/model/test_model_kernels"
      gtest test_model "$b/tests/model/test_model"
      # CPU backend FLOP/s next to OpenBLAS's sgemm on the block's shapes: a figure, not a check.
      if timeout "$(budget 120)" "$b/bench/model/bench_model_block" --sizes small --tokens 256 --reps 2 >"$W/bench_block.txt" 2>&1; then
        cat "$W/bench_block.txt" >>"$logf"
        grep -v '^#' "$W/bench_block.txt" | sed '/^$/d' | tail -n 3 | while IFS= read -r line; do info "bench_model_block: $line"; done
      else
        info "bench_model_block failed (not a check)"; show_tail "$W/bench_block.txt" 5
      fi
      # The CUDA backend's block (f32 and bf16 compute, device rows) next to cuBLAS's GEMMs of
      # the same shapes; its goal line: bf16 >= 0.5 of cuBLAS's bf16 rate at batch >= 64.
      if ((DRY)); then
        info "bench_model_block_cuda: skipped (dry run, no GPU)"
      elif timeout "$(budget 150)" "$b/bench/model/bench_model_block_cuda" --sizes small,1b --batches 1,64,256 \
             --context 512 --reps 5 >"$W/bench_block_cuda.txt" 2>&1; then
        cat "$W/bench_block_cuda.txt" >>"$logf"
        sed '/^$/d' "$W/bench_block_cuda.txt" | tail -n 13 | while IFS= read -r line; do info "bench_model_block_cuda: $line"; done
      else
        info "bench_model_block_cuda failed (not a check)"; show_tail "$W/bench_block_cuda.txt" 8
      fi
    fi
  fi
  stage_end model
}

# ---------------------------------------------------------------------------------------------
# Stage job.
# ---------------------------------------------------------------------------------------------
# find_cuda_dev HEADER LIB VAR: NCCL or cuDNN (the toolkit's, the system's or a pip wheel's in
# python3's site-packages); a wheel's libX.so.N alone gets a libX.so link in $W/shim. Appends
# -D VAR_INCLUDE_DIR / VAR_LIBRARY to cuda_args.
find_cuda_dev() {
  local header=$1 lib=$2 var=$3 d inc='' so='' site
  site=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
  for d in "$cuda_root/include" "$cuda_root/targets/x86_64-linux/include" /usr/include /usr/local/include; do
    [[ -f $d/$header ]] && { inc=$d; break; }
  done
  if [[ -z $inc ]]; then
    # shellcheck disable=SC2086
    inc=$(find $site -maxdepth 5 -path '*nvidia*' -name "$header" -printf '%h\n' 2>/dev/null | head -1)
  fi
  for d in "$cuda_root/lib64" "$cuda_root/lib" "$cuda_root/targets/x86_64-linux/lib" /usr/lib/$MA /usr/local/lib \
           "${inc%/include}/lib" "${inc%/include}/lib64"; do
    if [[ -e $d/lib$lib.so ]]; then so=$d/lib$lib.so; break; fi
    so=$(find "$d" -maxdepth 1 -name "lib$lib.so.*" 2>/dev/null | sort | head -1)
    if [[ -n $so ]]; then
      mkdir -p "$W/shim"; ln -sfn "$so" "$W/shim/lib$lib.so"; ln -sfn "$so" "$W/shim/$(basename "$so")"
      export LD_LIBRARY_PATH=$d:$LD_LIBRARY_PATH
      so=$W/shim/lib$lib.so; break
    fi
  done
  if [[ -z $inc || -z $so ]]; then bad "$var: $header or lib$lib.so not found (cmake/SwarmCuda.cmake needs both NCCL and cuDNN)"; return 1; fi
  ok "$var: $inc/$header, $so"
  cuda_args+=(-D"${var}_INCLUDE_DIR=$inc" -D"${var}_LIBRARY=$so")
}

fixtures=(tiny_f32_tied tiny_bf16_sharded tiny_f16_headdim_bias)

# pipe RANKS ARGS...: swarm_pipe under mpiexec, output in the log; prints stdout.
pipe() {
  local ranks=$1
  shift
  echo "## mpiexec -n $ranks swarm_pipe $*" >>"$logf"
  # shellcheck disable=SC2094  # both append to the log, neither reads it
  timeout "$(budget 180)" "$P/usr/bin/mpiexec" -n "$ranks" "$W/build-job/bin/swarm_pipe" "$@" 2>>"$logf" | tee -a "$logf"
}

check_generation() {   # 1 rank, the GPU backend, every prompt of every fixture
  local f d i n prompt new want got
  for f in "${fixtures[@]}"; do
    d=$repo/tests/data/model/$f
    n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["prompt"]))' "$d/expected.json")
    for ((i = 0; i < n; i++)); do
      read -r prompt new want < <(python3 -c '
import json, sys
e = json.load(open(sys.argv[1])); i = int(sys.argv[2])
print(",".join(map(str, e["prompt"][i])), len(e["tokens"][i]), ",".join(map(str, e["prompt"][i] + e["tokens"][i])))' "$d/expected.json" "$i")
      got=$(pipe 1 --model-dir "$d" --prompt-tokens "$prompt" --max-new-tokens "$new" --quiet --model.backend "$gpu_backend" |
            sed -n 's/^tokens: //p' | tr ' ' ',') || true
      if [[ $got == "$want" ]]; then ok "$f prompt $i: 1 rank, $gpu_backend backend: tokens equal expected.json"
      else bad "$f prompt $i: 1 rank, $gpu_backend backend: tokens '$got', expected.json '$want'"; show_tail "$logf" 8; fi
    done
  done
}

check_prompts() {      # 2 ranks on the one GPU, MPI between them, a 2-hop pipeline
  local f d span out
  for f in "${fixtures[@]}"; do
    d=$repo/tests/data/model/$f
    span=$(python3 -c 'import json, sys; print((json.load(open(sys.argv[1]))["num_hidden_layers"] + 1) // 2)' "$d/config.json")
    python3 - "$d" "$W/work/$f.prompts.jsonl" <<'EOF'
import json, os, random, sys
d, path = sys.argv[1], sys.argv[2]
e = json.load(open(os.path.join(d, "expected.json")))
vocab = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
rng = random.Random(7)
prompts = [{"id": f"golden{i}", "tokens": p, "max_new_tokens": len(t), "stop_at_eos": False}
           for i, (p, t) in enumerate(zip(e["prompt"], e["tokens"]))]
prompts += [{"id": i, "tokens": [rng.randrange(vocab) for _ in range(1 + 4 * i)], "max_new_tokens": 3 + i,
             "stop_at_eos": False} for i in range(4)]
with open(path, "w") as f:
    f.writelines(json.dumps(p) + "\n" for p in prompts)
EOF
    for backend in cpu "$gpu_backend"; do
      out=$W/work/$f.$backend.answers.jsonl
      rm -f "$out"
      pipe 2 --model-dir "$d" --workload.prompts "$W/work/$f.prompts.jsonl" --workload.outputs "$out" --quiet \
           --run.strategy new_only --run.transport mpi --servers.span "$span" --model.backend "$backend" >/dev/null || true
    done
    if python3 - "$d" "$W/work/$f.prompts.jsonl" "$W/work/$f.cpu.answers.jsonl" "$W/work/$f.$gpu_backend.answers.jsonl" \
         >>"$logf" 2>&1 <<'EOF'
import json, os, sys
d, prompts, cpu, gpu = sys.argv[1:]
read = lambda p: [json.loads(line) for line in open(p)]
e = json.load(open(os.path.join(d, "expected.json")))
q, a, b = read(prompts), read(cpu), read(gpu)
assert [x["id"] for x in a] == [x["id"] for x in q], "cpu answers: not the prompts' ids in order"
assert a == b, f"cpu and gpu answers differ: {a} != {b}"
for i, (p, t) in enumerate(zip(e["prompt"], e["tokens"])):
    assert a[i]["tokens"] == p + t, f"golden prompt {i}: {a[i]['tokens']} != {p + t}"
print(f"{len(q)} prompts: answers equal")
EOF
    then ok "$f: 2 ranks (span $span each, MPI), $gpu_backend backend answer ${f}'s prompts file as the cpu backend, goldens as expected.json"
    else bad "$f: 2 ranks, $gpu_backend vs cpu backend answers (see job.log)"; show_tail "$logf" 6; fi
  done
}

stage_job() {
  stage_begin job
  if ((have_job == 0)); then
    stage_end job SKIP "no .gpu-deps/job carried (fetch-deps.sh left the job tier out: over its size limit, or --no-job; 'fetch-deps.sh --job' fetches it)"
    return 0
  fi
  local b=$W/build-job
  # src/placement includes <coin/Cbc_C_Interface.h>, while cbc.pc's Cflags name .../include/coin:
  # that works where the parent is a default include directory (/usr/include), so here it is one.
  export CPATH=$P/usr/include${CPATH:+:$CPATH}
  cuda_args=()
  find_cuda_dev nccl.h nccl NCCL || true
  find_cuda_dev cudnn.h cudnn CUDNN || true
  rm -rf "$b"; mkdir -p "$W/work"
  if ((failed == 0)) && step "configure the project (-DSWARM_CUDA=ON)" 180 cmake -S "$repo" -B "$b" "${generator[@]}" \
       -DCMAKE_BUILD_TYPE=Release -DSWARM_CUDA=ON -DSWARM_CUDA_ARCHITECTURES="$ARCH" -DSWARM_BUILD_TESTS=OFF \
       -DSWARM_BUILD_BENCH=ON "${cuda_args[@]}"; then
    provenance "$b/CMakeCache.txt" MPI_mpi_LIBRARY HDF5_C_INCLUDE_DIR Boost_DIR pkgcfg_lib_CBC_CbcSolver benchmark_DIR
    if step "build swarm_pipe, bench_transport" 420 cmake --build "$b" -j "$J" --target swarm_pipe bench_transport; then
      check_generation
      check_prompts
      local layer
      for layer in transport fabric; do
        echo "## bench_transport --layer $layer" >>"$logf"
        if timeout "$(budget 120)" "$P/usr/bin/mpiexec" -n 2 "$b/bench/comm/bench_transport" --layer "$layer" --min-bytes 4K \
             --max-bytes 256K --factor 4 --iters 20 --reps 3 --goal 0 >"$W/bench_transport.txt" 2>&1 &&
           grep -q '^# PASS' "$W/bench_transport.txt"; then
          ok "bench_transport --layer $layer (2 ranks, MPI): $(grep -m1 'Avg' "$W/bench_transport.txt" | sed 's/^# //')"
        else
          bad "bench_transport --layer $layer"; show_tail "$W/bench_transport.txt" 8
        fi
        cat "$W/bench_transport.txt" >>"$logf"
      done
      if python3 -c 'import h5py, numpy' 2>/dev/null; then
        # 2 ranks of jobs/demo.ini, backend auto (cuda on both, MPI since they share the GPU).
        if timeout "$(budget 150)" python3 bench/job/realised_vs_predicted.py "$b" --repeats 1 --epochs 3 >"$W/realised.txt" 2>&1; then :; fi
        cat "$W/realised.txt" >>"$logf"
        while IFS= read -r line; do info "realised_vs_predicted: $line"; done < <(grep -v '^# *swarm\|^# *$\|(tokens/s)' "$W/realised.txt" | tail -n 8)
      else
        info "realised_vs_predicted: skipped (python3 has no h5py)"
      fi
    fi
  fi
  stage_end job
}

for s in $STAGES; do
  case $s in
    model) stage_model ;;
    job) stage_job ;;
    *) say "unknown stage '$s' in SWARM_GPU_STAGES (model, job)"; results+=("FAIL $s: unknown stage") ;;
  esac
done

say ""
say "== summary ($((SECONDS)) s; logs in $LOG)"
overall=PASS
for r in "${results[@]}"; do
  say "$r"
  [[ $r == FAIL* ]] && overall=FAIL
done
((DRY)) && say "(dry run: SWARM_GPU_DRY_RUN=1, the GPU itself was not checked)"
say "OVERALL $overall"
# shellcheck disable=SC2034  # read by the EXIT trap
finished=1
[[ $overall == PASS ]]
