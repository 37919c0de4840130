# syntax=docker/dockerfile:1
# telegram-oidc: a release build, then a small Debian runtime with only the binary.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole tree less what .dockerignore leaves out: whatever the build embeds (migrations,
# templates) comes along without this file having to list it.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin telegram-oidc \
    && cp target/release/telegram-oidc /usr/local/bin/telegram-oidc

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin telegram-oidc \
    && install -d -m 0700 -o telegram-oidc /keys
COPY --from=build /usr/local/bin/telegram-oidc /usr/local/bin/telegram-oidc
USER telegram-oidc
# A named volume mounted at /keys starts as a copy of this directory: owned by the service
# user, mode 0700, as the key store wants it.
VOLUME ["/keys"]
ENV TGOIDC_LISTEN=0.0.0.0:8080 \
    TGOIDC_KEYS_DIR=/keys
EXPOSE 8080
ENTRYPOINT ["telegram-oidc"]
CMD ["serve"]
