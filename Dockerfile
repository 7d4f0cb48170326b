# remediator: a small non-root image. The Docker socket, if mounted, is root-equivalent;
# the container user needs the socket's group (e.g. `group_add: ["${DOCKER_GID}"]`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY remediator ./remediator
# constraints.txt pins every runtime dependency to a tested release above the advisory floors.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/remediator --create-home remediator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /var/lib/remediator
EXPOSE 9595
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9595/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["remediator"]
CMD ["serve", "--config", "/etc/remediator/remediator.yaml"]
