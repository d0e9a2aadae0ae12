# Multi-stage build: compile with the pinned toolchain, ship a small non-root runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys: it needs make, a C compiler and zlib headers.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY src ./src
COPY schemas ./schemas
# Cargo.toml names the `pipeline` bench, and cargo refuses a manifest whose named target has no file.
COPY benches ./benches
# The workspace's other members: cargo reads every member's manifest before it builds anything. Only
# the gateway is compiled (-p hookbridge) and only its binary reaches the runtime image.
COPY tools ./tools
RUN cargo build --release --locked -p hookbridge --bin hookbridge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home hookbridge \
    && mkdir -p /var/lib/hookbridge/spool && chown 10001 /var/lib/hookbridge/spool
COPY --from=build /src/target/release/hookbridge /usr/local/bin/hookbridge
COPY hookbridge.example.toml /etc/hookbridge/hookbridge.toml
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookbridge"]
CMD ["serve", "--config", "/etc/hookbridge/hookbridge.toml"]
