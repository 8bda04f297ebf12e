# Stockroute: one image for the topic init, the worker, the simulator and the dashboard
# (docker-compose.yml picks the command). Every dependency ships as a manylinux wheel, so the
# slim image needs no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KAFKA_BOOTSTRAP=kafka:9092 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

WORKDIR /app
COPY . /app
# The code reads topics.yaml, policy/ and schemas/ next to its packages, so it runs from /app
# (PYTHONPATH) while `pip install .` brings the pinned dependencies and the `stockroute` command.
RUN pip install . && useradd --create-home --uid 10001 stockroute \
    && mkdir -p /data && chown stockroute /data
ENV PYTHONPATH=/app
USER stockroute
VOLUME ["/data"]
EXPOSE 6066 8501
CMD ["stockroute", "--help"]
