# A job image: the nvflare model fork plus your training framework, for the job pods /
# containers that `nvflare deploy prepare` (runtime k8s or docker) starts per job. Build
# docker/Dockerfile first; name this image in the job's launcher_spec (or the study's
# container.image) and tell the server it has the fork (docs/containers.md).
#
#   docker build -f docker/job-image.Dockerfile -t nvflare-fork-pt:2.9.0-model.1 \
#       --build-arg FRAMEWORK="torch --index-url https://download.pytorch.org/whl/cpu" docker/
#   docker build -f docker/job-image.Dockerfile -t nvflare-fork-tf:2.9.0-model.1 \
#       --build-arg FRAMEWORK=tensorflow-cpu docker/
#
# Wheels in docker/wheels/ are preferred by pip (--find-links; e.g. a local CPU torch wheel
# with FRAMEWORK=torch==<its version>); they are bind-mounted for the install, not copied
# into the image. The base image sets PIP_CONSTRAINT to its pinned nvflare version, so a
# framework (or a requirements.txt) that asks for nvflare cannot replace the fork with
# upstream; the build fails if nvflare is no longer the fork afterwards. The framework is
# installed as root; the image runs as the base's non-root user (NVFLARE_USER).
ARG BASE_IMAGE=nvflare-fork:2.9.0-model.1
FROM ${BASE_IMAGE}
ARG FRAMEWORK=torch
USER root
RUN --mount=type=bind,source=wheels,target=/tmp/wheels \
    pip install --no-cache-dir --find-links /tmp/wheels ${FRAMEWORK} \
    && python -c "import nvflare, sys; v = nvflare.__version__; sys.exit(0 if '+model.' in v else 'not the fork: ' + v)"
USER ${NVFLARE_USER}
