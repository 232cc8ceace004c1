# syntax=docker/dockerfile:1
# Build stage: wheels for policy-bot and its dependencies.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: no compilers, no pip cache, a non-root user (uid 10001, as the Helm chart's
# securityContext expects). git is there for git backup targets.
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="policy-bot" \
      org.opencontainers.image.description="Slack ChatOps for Kyverno policy operations" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 policybot \
 && useradd --system --uid 10001 --gid policybot --home-dir /var/lib/policy-bot policybot \
 && mkdir -p /var/lib/policy-bot && chown policybot:policybot /var/lib/policy-bot
COPY --from=build /wheels /wheels
# pip compiles the bytecode here, at build time: the root filesystem is read-only at run time
# (readOnlyRootFilesystem), where only /tmp and the data volume /var/lib/policy-bot are written.
RUN pip install --no-cache-dir --no-index --find-links /wheels policy-bot && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/policy-bot
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/var/lib/policy-bot TMPDIR=/tmp \
    POLICY_BOT_CONFIG=/etc/policy-bot/config.yaml
VOLUME ["/var/lib/policy-bot"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "bot"]
