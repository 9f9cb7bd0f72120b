# The operator image for users with a Docker engine. hack/build-image.sh
# builds the same image without one (umoci + skopeo).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin clusterscale

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/clusterscale /clusterscale
USER 65532:65532
ENTRYPOINT ["/clusterscale"]
