# The netpol-conformance image for `netpol-conformance job` (docs/where-to-run.md).
# Build the wheel first, then the image:
#   python -m build --wheel && docker build -t netpol-conformance:$(python -m setuptools_scm) .
FROM python:3.12.8-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package from the wheel built in this checkout (dist/), its dependencies from the index.
COPY dist/netpol_conformance-*.whl /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/netpol_conformance-*.whl \
    && rm -rf /tmp/wheels \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin netpol

USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["netpol-conformance"]
CMD ["--help"]
