# syntax=docker/dockerfile:1
# voicepaas: a static-ish release build in a Rust image, run as a non-root user in a
# distroless image (glibc and libgcc only: TLS is rustls, SQLite is compiled in).
#   docker build -t voicepaas .
#   docker run --rm -p 8080:8080 voicepaas          # SQLite in /data and the sandbox

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY api-docs api-docs
COPY console console
COPY benches benches
# Stripped: the release profile keeps line tables for benchmarks' profiles (95 MB);
# without them the binary is about 16 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --bin voicepaas \
    && cp target/release/voicepaas /voicepaas \
    && mkdir -p /data/prompts /data/recordings

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /voicepaas /usr/local/bin/voicepaas
# The default SQLite database, prompts and recordings live here (a volume in compose).
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /data
ENV VOICEPAAS_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/voicepaas.db \
    VOICEPAAS_PROMPTS_DIR=/data/prompts \
    VOICEPAAS_RECORDINGS_DIR=/data/recordings
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/voicepaas"]
CMD ["serve"]
