# syntax=docker/dockerfile:1
# The SecureMed image that the KubeRay manifests in deploy/kuberay/ run. Its name and tag are
# deploy/kuberay/image.txt (securemed:<the package version>); a test keeps the two, the labels
# below and the manifests in step:
#
#   docker build -t securemed:0.1.0 .
#
# It holds the code and its pinned dependencies only: no certificates or keys (each Ray group
# mounts its own site's Kubernetes Secret at run time), no model weights, no data, no service
# state (volumes). Ray's own image is the base because KubeRay's probes and `ray start` expect
# what it ships, and it runs as the unprivileged user `ray`.
FROM rayproject/ray:2.60.0-py311-cpu

LABEL org.opencontainers.image.title="securemed" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="SecureMed: federated DP training and the sealed report service, on Ray 2.60"

# CPU wheels of torch and torchvision: this image has no GPU to use, and the default wheels
# carry gigabytes of CUDA libraries. pip picks the +cpu build of the pinned version from here.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV HF_HUB_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

USER root
RUN mkdir -p /app/runs /app/var && chown -R ray:users /app
USER ray
WORKDIR /app

# Dependencies first, exactly as pyproject.toml pins them, so a code change reuses this layer.
COPY --chown=ray:users pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --extra-index-url "${TORCH_INDEX_URL}" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY --chown=ray:users securemed/ securemed/
COPY --chown=ray:users actors/ actors/
COPY --chown=ray:users jobs/ jobs/
COPY --chown=ray:users services/ services/
RUN pip install --no-deps .

# What the entry points read relative to /app: job configs and the Serve config.
COPY --chown=ray:users configs/ configs/
COPY --chown=ray:users deploy/serve.yaml deploy/serve.yaml
