# One image for every Python service of the Compose stack: s3proxy, origin, worker,
# the one-shot migrate (`nebula prepare`) and the edge namespace holder.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's ffmpeg (built with QuickSync through libmfx) and Intel's media stack: the
# non-free iHD driver encodes on every generation the free build leaves out; libmfx1
# (older GPUs) and libmfx-gen1.2/libvpl2 (Tiger Lake and newer) are the QSV runtimes;
# vainfo lets `nebula doctor` and you see what the GPU offers. Intel's packages are
# amd64 only; elsewhere the worker encodes with libx264.
RUN set -eux; \
    sed -i 's/^Components: main$/Components: main non-free non-free-firmware/' \
        /etc/apt/sources.list.d/debian.sources; \
    apt-get update; \
    packages="ffmpeg"; \
    if [ "$(dpkg --print-architecture)" = amd64 ]; then \
        packages="$packages intel-media-va-driver-non-free libmfx1 libmfx-gen1.2 libvpl2 vainfo"; \
    fi; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*

# A fixed non-root user; its home holds the transcode scratch space and the origin cache
# (named volumes start out owned by it because the directories exist in the image).
RUN groupadd --system --gid 10001 nebula \
    && useradd --system --uid 10001 --gid nebula --home-dir /var/lib/nebula --create-home \
        --shell /usr/sbin/nologin nebula \
    && install -d -o nebula -g nebula /var/lib/nebula/work /var/lib/nebula/cache

WORKDIR /opt/nebula
COPY pyproject.toml setup.cfg README.md ./
COPY nebulacore ./nebulacore
COPY nebula ./nebula
COPY catalog ./catalog
COPY nebulaqueue ./nebulaqueue
COPY s3proxy ./s3proxy
COPY transcoder ./transcoder
COPY origin ./origin
RUN pip install . && nebula --version

USER nebula
ENV NEBULA_DATA_DIR=/var/lib/nebula
WORKDIR /var/lib/nebula
EXPOSE 9000 8080
CMD ["nebula", "--help"]
