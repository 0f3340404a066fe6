# hdlserver: a Handle System server. Build:  docker build -t hdlserver .
# Run (first start initialises the volume from the HDL_* variables; see the README, "Container image"):
#   docker run -d --name hdl -p 2641:2641/udp -p 2641:2641/tcp -p 8000:8000 -v hdl-data:/srv/handle \
#     -e HDL_PREFIX=20.500.12345 -e HDL_PUBLIC_ADDRESS=203.0.113.7 -e HDL_ADMIN_SECRET=change-me hdlserver
# BASE_IMAGE may name any Debian-like image with Python >= 3.11 and its venv module.
# Daemonless builders: "buildah bud --format docker" / "podman build --format docker" (the OCI format has no
# HEALTHCHECK and would drop it).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hdlserver ./hdlserver
# A virtual environment, so the runtime stage copies one directory and the system Python stays clean.
RUN python3 -m venv /opt/hdlserver \
 && /opt/hdlserver/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/hdlserver/bin/hdl-server --help > /dev/null

FROM ${BASE_IMAGE}
RUN groupadd --gid 10001 handle \
 && useradd --uid 10001 --gid handle --home-dir /srv/handle --no-create-home --no-log-init \
        --shell /usr/sbin/nologin handle \
 && mkdir -p /srv/handle \
 && chown handle:handle /srv/handle \
 && chmod 0750 /srv/handle
COPY --from=build /opt/hdlserver /opt/hdlserver
ENV PATH=/opt/hdlserver/bin:$PATH \
    HDL_SERVER_DIR=/srv/handle \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/srv/handle"]
WORKDIR /srv/handle
USER 10001:10001
# Handle protocol (UDP and TCP) and the HTTP interface.
EXPOSE 2641/udp 2641/tcp 8000/tcp
# The server stops gracefully on SIGTERM: it closes the listeners, lets answers in progress go out,
# closes the store and exits 0. docker stop waits 10 s by default, which is enough.
STOPSIGNAL SIGTERM
# Resolves the server's own prefix handle (0.NA/<prefix>) over TCP on the loopback address.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["hdl-docker-entrypoint", "healthcheck"]
ENTRYPOINT ["hdl-docker-entrypoint"]
CMD ["serve"]
