# syntax=docker/dockerfile:1
# One image for every pipeline binary (ingest, normalize, dedupe,
# state-writer, sink, create-topics, ...). docker-compose.yml picks the
# binary per service.

FROM rust:1.95-bookworm AS build
# cmake and the curl headers build rdkafka's bundled librdkafka (shared/STACK.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \;

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin estate
COPY --from=build /out/ /usr/local/bin/
COPY config/ /etc/estate/
USER estate
ENV LOG_FORMAT=json
# Each service's command is set in docker-compose.yml.
CMD ["ingest", "--help"]
