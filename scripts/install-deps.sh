#!/usr/bin/env bash
# Installs what swarm_pipe needs on Debian 12 (idempotent; root or sudo). Each package is
# justified in README.md, "Dependencies". Set SWARM_SKIP_APT=1 to skip (e.g. no network).
set -euo pipefail
[[ "${SWARM_SKIP_APT:-0}" == 1 ]] && exit 0
packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev            # MPI ranks (mpirun, srun --mpi=pmix)
  libhdf5-dev hdf5-tools                # traces (C API) and h5dump
  libboost-program-options-dev          # options and job files
  libopenblas-dev                       # CPU backend GEMMs
  libdnnl-dev                           # CPU bf16 GEMMs (model.compute_dtype = bf16)
  nlohmann-json3-dev                    # what-if JSON lines, config.json, safetensors headers
  coinor-libcbc-dev                     # integer programme of the optimal placement
  libgtest-dev libbenchmark-dev         # tests and benchmarks
  python3 python3-h5py python3-numpy python3-matplotlib   # integration tests and plots
  slurm-wlm munge                       # the real Slurm the test suite starts on localhost
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
