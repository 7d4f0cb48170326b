# remediator: a small non-root image, built from the repository root with no other input.
#   docker build -t remediator .        # pip installs from PyPI, FROM python:3.11-slim
# Where no registry is reachable (README, "Running in Docker"):
#   pip wheel --wheel-dir wheels -c constraints.txt .    # on a machine that reaches PyPI
#   docker build --build-arg WHEELS=wheels --build-arg BASE_IMAGE=<any image with python3.11+
#     and its venv module> -t remediator .
# WHEELS names a folder of the build context holding every wheel needed, remediator's own
# included; the build then needs no network at all.
# The Docker socket, if mounted, is root-equivalent; the container user needs the socket's
# group (compose: `group_add: ["${DOCKER_GID}"]`, see deploy/docker-compose.yml).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG WHEELS=
WORKDIR /src
COPY . .
# A venv of its own: Debian's /usr/bin/python3 refuses pip outside one, and the official
# image's pip would mix with the system site-packages. constraints.txt pins every runtime
# dependency to a tested release above the advisory floors.
# With WHEELS, remediator's own wheel comes from there when it is there (what
# `pip wheel --wheel-dir wheels .` makes); else the source here is built, which needs the
# build backend's wheels (hatchling) in WHEELS too.
RUN python3 -m venv /opt/remediator \
 && if [ -n "$WHEELS" ]; then \
      set -- remediator; ls "/src/$WHEELS"/remediator-*.whl >/dev/null 2>&1 || set -- .; \
      /opt/remediator/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links "/src/$WHEELS" -c constraints.txt "$@"; \
    else \
      /opt/remediator/bin/pip wheel --no-cache-dir --disable-pip-version-check \
        --wheel-dir /wheels -c constraints.txt . \
      && /opt/remediator/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-index --find-links /wheels -c constraints.txt remediator; \
    fi \
 && /opt/remediator/bin/remediator --version

FROM ${BASE_IMAGE}
# uid and gid 10001, as deploy/kubernetes/deployment.yaml's securityContext says.
RUN groupadd --system --gid 10001 remediator \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/remediator --create-home \
      --shell /usr/sbin/nologin remediator \
 && mkdir -p /etc/remediator
# The same base as the build stage, so the venv's interpreter link points at the same python.
COPY --from=build /opt/remediator /opt/remediator
ENV PATH=/opt/remediator/bin:$PATH PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/remediator
EXPOSE 9595
# GET /readyz on the address the config's `listen` names (remediator/healthcheck.py): a
# wildcard address is probed on loopback.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/opt/remediator/bin/python", "-m", "remediator.healthcheck", \
       "--config", "/etc/remediator/remediator.yaml", "--path", "/readyz"]
ENTRYPOINT ["/opt/remediator/bin/remediator"]
CMD ["serve", "--config", "/etc/remediator/remediator.yaml"]
