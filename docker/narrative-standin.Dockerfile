# The stand-in narrative as an image: what the docker backend starts in the demo and the
# end-to-end test instead of kbase/narrative. A page naming it (after its host name, the
# container's short id), an echoing websocket and Jupyter's /api/status, under /narrative/
# on port 8888 like a narrative.
#
# Built by `cargo xtask images` from target/images/narrative-standin/ (the static binary and
# a passwd/group), with nothing pulled:
#
#     docker build -f docker/narrative-standin.Dockerfile -t narrative-standin:<version> \
#         target/images/narrative-standin
FROM scratch
COPY etc/ /etc/
COPY narrative-standin /narrative-standin
USER 10001:10001
EXPOSE 8888
# The binary probes itself (a scratch image has no shell or curl). Until the first probe
# passes the container is `starting`, and Traefik's Docker provider does not route to it;
# every 2 s keeps a cold start short without much load.
HEALTHCHECK --interval=2s --timeout=3s --retries=3 \
    CMD ["/narrative-standin", "--probe", "--port", "8888"]
ENTRYPOINT ["/narrative-standin", "--host", "0.0.0.0", "--port", "8888"]
