# The traefiker image: the static `traefiker` binary on an empty base, as a non-root user.
#
# `cargo xtask images` builds it without pulling anything: it compiles the binary statically
# (glibc with crt-static, or musl), stages it under target/images/traefiker/ with the host's
# CA certificates and a passwd/group naming the user, and runs
#
#     docker build -f Dockerfile -t traefiker:<version> target/images/traefiker
#
# docs/docker.md explains the image, and how a site with a registry builds it in one
# multi-stage step instead.
FROM scratch
# passwd/group name uid 10001 `traefiker`; the CA bundle lets auth2 and the version URL be
# https.
COPY etc/ /etc/
# The default activity store is /tmp/reaper.db; /data is where a volume keeps it across
# container restarts (sqlite_reaperdb_path=/data/reaper.db).
COPY --chown=10001:10001 tmp/ /tmp/
COPY --chown=10001:10001 data/ /data/
COPY traefiker /traefiker
USER 10001:10001
# glibc's allocator: two arenas, and blocks of 64 KiB or more (a listing's vectors and maps at
# 10,000 narratives) mapped on their own so they go back to the system when freed. Keeps the
# RSS of a replica tracking 10,000 narratives under 40 MB through a reaper cycle
# (`cargo xtask bench`); without them it peaks near 55 MB.
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536
EXPOSE 5000
ENTRYPOINT ["/traefiker"]
