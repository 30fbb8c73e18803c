# syntax=docker/dockerfile:1
# The strato broker image: `docker build -t strato .`, or `docker compose up` in localstack/.
#
#   docker run --rm -p 127.0.0.1:9092:9092 strato            # embedded default, data in the container
#   docker run --rm strato serve --help                      # every flag (also STRATO_<NAME> env vars)

# ---- build -----------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
# `etcd-client` compiles etcd's protobuf definitions at build time: protoc and the well-known
# types (google/protobuf/*.proto) that they import.
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target dir between builds (BuildKit); the binary is
# copied out in the same step because the target mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin strato \
    && cp target/release/strato /usr/local/bin/strato

# ---- runtime ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
# rustls checks S3 endpoints' certificates against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 strato \
    && useradd --system --uid 10001 --gid strato --home-dir /var/lib/strato --no-create-home \
        --shell /usr/sbin/nologin strato \
    && mkdir -p /var/lib/strato \
    && chown strato:strato /var/lib/strato
COPY --from=builder /usr/local/bin/strato /usr/local/bin/strato
USER strato
WORKDIR /var/lib/strato
# Kafka listener and HTTP (/metrics, /health, /ready).
EXPOSE 9092 9644
ENTRYPOINT ["strato"]
# Both listeners on all interfaces of the container (the defaults bind 127.0.0.1, unreachable
# through a published port). A broker behind a published port also needs --advertised-address.
CMD ["serve", "--listen", "0.0.0.0:9092", "--http-listen", "0.0.0.0:9644", "--data-dir", "/var/lib/strato"]
