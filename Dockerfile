# One image for every Python service of the Compose stack: s3proxy, origin, worker,
# the one-shot migrate (`nebula prepare`) and the edge namespace holder.
# Debian bookworm's own Python 3.11 in a venv, Debian's ffmpeg, pinned Python packages.
FROM debian:bookworm-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Debian's ffmpeg (built with QuickSync through libmfx) and Intel's media stack: the
# non-free iHD driver encodes on every generation the free build leaves out; libmfx1
# (older GPUs) and libmfx-gen1.2/libvpl2 (Tiger Lake and newer) are the QSV runtimes;
# vainfo lets `nebula doctor` and you see what the GPU offers. Intel's packages are
# amd64 only; elsewhere the worker encodes with libx264.
# A fixed non-root user; its home holds the transcode scratch space and the origin cache
# (named volumes start out owned by it because the directories exist in the image).
RUN set -eux; \
    sed -i 's/^Components: main$/Components: main non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources; \
    apt-get update; \
    packages="python3 python3-venv ffmpeg ca-certificates"; \
    if [ "$(dpkg --print-architecture)" = amd64 ]; then \
        packages="$packages intel-media-va-driver-non-free libmfx1 libmfx-gen1.2 libvpl2 vainfo"; \
    fi; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 nebula; \
    useradd --system --uid 10001 --gid nebula --home-dir /var/lib/nebula --create-home \
        --shell /usr/sbin/nologin nebula; \
    install -d -o nebula -g nebula /var/lib/nebula/work /var/lib/nebula/cache

# The pinned dependencies first (requirements.lock): this layer is rebuilt only when the
# lock changes, so a deploy that changes Nebula's code reinstalls Nebula alone, offline.
WORKDIR /opt/nebula
COPY requirements.lock ./
# --no-deps: exactly the lock, nothing resolved on the day; `pip check` below fails the
# build if the lock misses something. pip trusts the system's certificate store, as apt
# does (a proxy's CA added there counts).
RUN python3 -m venv "$VIRTUAL_ENV" \
    && PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install --no-deps -r requirements.lock

# The build context is the allow-list in .dockerignore: the package sources and their
# metadata, nothing else (one COPY, one layer).
COPY . ./
RUN pip install --no-deps --no-build-isolation . && pip check && nebula --version

USER nebula
ENV NEBULA_DATA_DIR=/var/lib/nebula
WORKDIR /var/lib/nebula
EXPOSE 9000 8080
CMD ["nebula", "--help"]
