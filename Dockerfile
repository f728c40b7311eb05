# The openorder image: both binaries (openorder, openorder-broker) on a slim Debian.
# Used by docker-compose.yml; not built in CI (no Docker engine there).
FROM rust:1-bookworm AS build
WORKDIR /src
# librdkafka's TLS links the system OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/openorder /src/target/release/openorder-broker /usr/local/bin/
ENTRYPOINT ["openorder"]
