# The switchboard image: every role (`switchboard up|cluster-manager|token-api|portal|controller`)
# from one image; deploy/compose.yaml runs the reference cluster from it (docs/operations.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY eventlog ./eventlog
COPY alerts ./alerts
COPY webhooks ./webhooks
COPY observability ./observability
COPY rpc ./rpc
COPY contracts ./contracts
COPY credentials ./credentials
COPY edge ./edge
COPY journal ./journal
COPY scheduler ./scheduler
COPY cluster_manager ./cluster_manager
COPY token_api ./token_api
COPY portal ./portal
COPY conference_controller ./conference_controller
COPY switchboard ./switchboard
COPY bench ./bench
RUN pip install --no-cache-dir ".[uvloop,postgres]" && rm -rf /root/.cache

RUN useradd --system --create-home --home-dir /var/lib/switchboard switchboard
USER switchboard
WORKDIR /var/lib/switchboard

# token API, portal, health and metrics
EXPOSE 3000 8080 9100
ENTRYPOINT ["switchboard"]
CMD ["up", "--host", "0.0.0.0"]
