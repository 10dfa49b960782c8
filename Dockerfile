# syntax=docker/dockerfile:1
# Multi-stage build of both binaries; the final images are distroless (glibc + CA roots, no
# shell, non-root) and hold one static-ish binary each.
#
#   docker build --target server -t confirm-server .
#   docker build --target worker -t confirm-worker .

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# zlib is compiled in (the runtime image has no libz).
ENV LIBZ_SYS_STATIC=1 CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin server --bin worker \
 && mkdir -p /out \
 && cp target/release/server target/release/worker /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
WORKDIR /app
ENV APP_ENV=production RUST_LOG=info

FROM runtime AS server
COPY --from=build /out/server /usr/local/bin/server
ENV LISTEN_ADDR=0.0.0.0:5003
EXPOSE 5003
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/server"]
CMD ["serve"]

FROM runtime AS worker
COPY --from=build /out/worker /usr/local/bin/worker
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/usr/local/bin/worker", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["run"]
