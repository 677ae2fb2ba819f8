#!/bin/sh
# Install the nvflare model fork from its wheel and pin it, so that no later
# `pip install` in the same environment (a requirements.txt naming nvflare, a package
# that wants nvflare>=2.9.1, pip install -U) can swap upstream nvflare in.
#
#   install_nvflare_fork.sh WHEEL [CONSTRAINTS_FILE]
#
# PYTHON picks the interpreter (default python3). NVFLARE_EXTRAS installs upstream extras
# with it (e.g. NVFLARE_EXTRAS=k8s for the Kubernetes job launcher). NVFLARE_FORK_VERSION,
# if set, must be the version the wheel installs (an image's label cannot lie). Then set
# PIP_CONSTRAINT to the constraints file (default /etc/nvflare-constraints.txt), as the
# fork's Dockerfiles do.
# Used by the repo's docker/Dockerfile and by the Dockerfile that provisioning generates.
set -eu
wheel="${1:?usage: install_nvflare_fork.sh WHEEL [CONSTRAINTS_FILE]}"
constraints="${2:-/etc/nvflare-constraints.txt}"
python="${PYTHON:-python3}"
extras="${NVFLARE_EXTRAS:-}"
requirement="$wheel"
if [ -n "$extras" ]; then requirement="$wheel[$extras]"; fi

"$python" -m pip install --no-cache-dir --disable-pip-version-check "$requirement"
version="$("$python" -c 'import nvflare; print(nvflare.__version__)')"
case "$version" in
  *+model.*) ;;
  *)
    echo "install_nvflare_fork.sh: $wheel installed nvflare $version, which is not the nvflare model fork" >&2
    exit 1
    ;;
esac
if [ -n "${NVFLARE_FORK_VERSION:-}" ] && [ "$version" != "$NVFLARE_FORK_VERSION" ]; then
  echo "install_nvflare_fork.sh: $wheel installed nvflare $version, not $NVFLARE_FORK_VERSION" >&2
  exit 1
fi
mkdir -p "$(dirname "$constraints")"
echo "nvflare==$version" > "$constraints"
echo "installed nvflare $version; pinned in $constraints (PIP_CONSTRAINT=$constraints keeps it)"
