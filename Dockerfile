# syntax=docker/dockerfile:1
# The admission webhook server image:  docker build -t admission-webhook:0.1.0 .
#
# Stage 1 builds wheels (ours and every dependency's); stage 2 installs them into a clean slim
# Python and keeps nothing else: no compilers, no pip cache, no wheels, no source tree, no tests.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler and mypy compile the request path (the modules setup.py lists) with mypyc; the
# runtime stage gets the compiled wheel and neither of them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# mypyc type-checks what it compiles as `mypy --strict` does: with PyYAML's stubs too.
RUN pip install --no-cache-dir "setuptools>=77" wheel "mypy>=1.10" types-PyYAML
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
# webhook/default_policies links to policies/: the wheel packages the default policy files.
COPY policies ./policies
COPY webhook ./webhook
# --no-build-isolation: the build uses the mypy installed above (mypyc type-checks the package with
# pyproject.toml's [tool.mypy], so it needs the runtime dependencies' types: pip resolves them here).
RUN pip install --no-cache-dir . && pip uninstall -y admission-webhook \
    && WEBHOOK_COMPILE=1 pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted from the builder for this one step only, so they never become a
# layer of the image; --no-index installs exactly what was built, nothing fetched at this point.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels admission-webhook
WORKDIR /app
# The default policies ship inside the package (used when --policies is not given, as by
# `docker run`); in a cluster /policies is mounted from a ConfigMap and passed with --policies.
# A numeric UID, so the kubelet can verify runAsNonRoot without resolving a user name.
USER 10001:10001
EXPOSE 8443
# No HEALTHCHECK: Kubernetes probes /readyz and /healthz (see deploy/base/deployment.yaml).
# -OO: no docstrings in memory, 2 MB less per worker (the webhook reads none while serving; the
# `policies` command reads check descriptions from source). Every command runs this way.
ENTRYPOINT ["python", "-OO", "-m", "webhook"]
CMD ["serve", "--host", "0.0.0.0"]
