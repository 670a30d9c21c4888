#!/usr/bin/env bash
# Runs the backend tests (golden norms, conv2d kernels, models with a training step on every backend, ESM
# against PyTorch hooks, the zoo's logits parity) on the tch or wgpu backend, next to flex:
#
#   tools/backend_tests.sh tch     # LibTorch 2.9.1 from PyPI in a venv (6.7 GB: the CUDA
#                                  # wheel), about 30 min to build on 2 cores
#   tools/backend_tests.sh wgpu    # wgpu; on a machine without a GPU through Mesa's lavapipe
#                                  # (apt-get install mesa-vulkan-drivers), about 15 min to build
#
# Each backend builds into its own target folder (target/tch, target/wgpu) so the usual
# build is not redone. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:?usage: tools/backend_tests.sh tch|wgpu [cargo test arguments]}
shift
tests=(--test golden_norms --test conv_kernels --test models --test esm --test zoo)
case "$backend" in
    tch)
        venv=${XBN_TORCH_VENV:-$HOME/.cache/xbn/torch-2.9}
        if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
            echo "installing PyTorch 2.9.1 into $venv (the version burn-tch 0.22 is built for)" >&2
            python3 -m venv "$venv"
            "$venv/bin/pip" install --quiet "torch==2.9.1"
        fi
        torch_lib=$("$venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
        export PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1
        export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        ;;
    wgpu)
        if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
            echo "no Vulkan driver found: installing Mesa's (lavapipe runs wgpu on the CPU)" >&2
            if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q mesa-vulkan-drivers
            else sudo apt-get install -y -q mesa-vulkan-drivers; fi
        fi
        export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
        ;;
    *)
        echo "unknown backend '$backend': use tch or wgpu" >&2
        exit 2
        ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/$backend}
start=$(date +%s)
cargo test --release --locked --features "ndarray $backend" "${tests[@]}" "$@" -- --nocapture
echo "$backend backend tests passed in $(( $(date +%s) - start )) s"
