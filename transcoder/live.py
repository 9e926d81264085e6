"""Publishing a ladder while ffmpeg makes it: playable seconds after the upload.

ffmpeg writes every rendition as an HLS EVENT playlist with ``temp_file`` (a segment gets
its final name only once complete, and the playlist is replaced by a rename). A
:class:`LivePublisher` thread re-reads those local playlists every
:data:`POLL_SECONDS`; for each newly listed segment it uploads the init segment (once,
first), then the segment, and only once the segment is in storage it PUTs OUR copy of
that rendition's media playlist: an EVENT playlist listing only uploaded segments. A
reader therefore never sees a segment listed before it is complete in storage.

Once every rendition has its first segment, a provisional master (BANDWIDTH from the
rungs' targets) is PUT, but only for an asset with no ladder yet: an overwrite keeps
serving the previous version's master until the new ladder is complete
(:func:`transcoder.publish.publish` then writes the measured master).

The EVENT playlists in storage are also what a restarted job resumes from
(:meth:`LivePublisher.resume_point`): the first segment index not yet published in every
rendition. Segments at or after it are encoded again; those a previous attempt already
published are never uploaded again (a viewer may hold them).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from nebulacore import hls
from nebulacore.s3 import S3Client
from transcoder.playlist import EventPlaylist, MediaPlaylist, Segment, parse_media_playlist

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
AAC_FRAME_SECONDS = Fraction(1024, 48000)  # AAC-LC at the ladder's 48 kHz
AAC_PRIMING_SECONDS = float(AAC_FRAME_SECONDS)  # the AAC encoder's delay: one frame
FIRST_PACKET = ["ffprobe", "-v", "error", "-read_intervals", "%+#1", "-show_entries"]
FIRST_PACKET += ["packet=pts_time", "-of", "csv=p=0"]
UPLOAD_THREADS = 4


@dataclass
class RenditionState:
    """What storage has of one rendition: the playlist we PUT lists exactly these."""

    name: str
    playlist: EventPlaylist
    # Segments a previous attempt of this job published (not uploaded again).
    inherited: set[str] = field(default_factory=set)

    @property
    def published(self) -> set[str]:
        return {segment.uri for segment in self.playlist.segments}


def resume_step(segment_seconds: int, has_audio: bool) -> int:
    """Resume only at boundaries where the AAC frame grid (1024 samples at 48 kHz) lines
    up with the published one: a resumed encode's audio frames start at the boundary, a
    from-zero encode's run on from 0, and the two agree every 8 s (375 frames); elsewhere
    the audio would overlap the published segment by a fraction of a frame."""
    if not has_audio:
        return 1
    return (Fraction(segment_seconds) / AAC_FRAME_SECONDS).denominator


class LivePublisher:
    """Follows ffmpeg's local playlists in ``out_dir`` and publishes what is complete."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,  # <asset_id>/v<job_id>
        out_dir: Path,
        renditions: list[str],
        segment_seconds: int,
        playlist_version: int = 7,
        on_first_segments: Callable[[], bool] | None = None,
    ) -> None:
        self.client, self.bucket, self.prefix, self.out_dir = client, bucket, prefix, out_dir
        self.states = {
            name: RenditionState(name, EventPlaylist(segment_seconds, playlist_version))
            for name in renditions
        }
        self.on_first_segments = on_first_segments
        self.first_segments_seen = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="live-upload")
        self.error: Exception | None = None

    def key(self, rendition: str, name: str) -> str:
        return f"{self.prefix}/{rendition}/{name}"

    # ----- resume -------------------------------------------------------------------------

    def resume_point(self, last_segment: int, step: int = 1) -> int:
        """Read back what storage has (the truth), adopt it, and return the first segment
        index to encode: the first one missing in some rendition, at most ``last_segment``,
        rounded down to a multiple of ``step`` (:func:`resume_step`)."""
        counts = []
        for state in self.states.values():
            stored = self._stored_playlist(state.name)
            if stored is None:
                counts.append(0)
                continue
            state.playlist.init = stored.init
            state.playlist.segments = list(stored.segments)
            state.inherited = state.published
            counts.append(len(stored.segments))
            if stored.init is not None:  # the codec strings of the master are read from it
                self._download(state.name, stored.init)
        first_missing = min([*counts, last_segment]) if counts else 0
        return first_missing // step * step

    def timeline_shift(self) -> float:
        """Where the published ladder's timeline starts: the first packet time of the first
        rendition's first segment (0 for the first video frame, shifted by the muxer) minus
        what that first packet is (a video frame at 0, or AAC priming before 0 for audio
        alone). A resumed encode adds it, so its timestamps follow the published ones."""
        name = next(iter(self.states))
        state = self.states[name]
        if not state.playlist.segments or state.playlist.init is None:
            return 0.0
        first = self.out_dir / name / f"first-{state.playlist.segments[0].uri}"
        self.client.download_file(
            self.bucket, self.key(name, state.playlist.segments[0].uri), str(first)
        )
        init = (self.out_dir / name / state.playlist.init).read_bytes()
        first.write_bytes(init + first.read_bytes())
        try:
            pts = first_packet_time(first)
        finally:
            first.unlink()
        return pts + (AAC_PRIMING_SECONDS if name == "audio" else 0.0)

    def _stored_playlist(self, rendition: str) -> MediaPlaylist | None:
        key = self.key(rendition, hls.MEDIA_PLAYLIST)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return parse_media_playlist(body.decode())

    def restore_inherited(self) -> None:
        """Put the segments (and init) a previous attempt published into ``out_dir``, over
        ffmpeg's re-encoded copies: measuring, verifying and thumbnails then read exactly
        the ladder viewers get."""
        wanted = []
        for state in self.states.values():
            names = sorted(state.inherited)
            if state.inherited and state.playlist.init is not None:
                names.append(state.playlist.init)
            wanted += [(state.name, name) for name in names]
        list(self._pool.map(lambda item: self._download(*item), wanted))

    def _download(self, rendition: str, name: str) -> None:
        target = self.out_dir / rendition / name
        target.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self.key(rendition, name), str(target))

    # ----- the poll loop ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-publisher")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        self.stop()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll()
                self.error = None
            except Exception as exc:  # storage hiccup: retried at the next poll
                if self.error is None:
                    log.warning("live publishing of %s: %s (retrying)", self.prefix, exc)
                self.error = exc

    def poll(self) -> None:
        """Publish every segment ffmpeg has finished since the last poll."""
        list(self._pool.map(self._sync, self.states.values()))
        if not self.first_segments_seen and all(
            state.playlist.segments for state in self.states.values()
        ):
            # The callback may ask to be called again (False): what it reads is not there yet.
            self.first_segments_seen = self.on_first_segments is None or self.on_first_segments()

    def _sync(self, state: RenditionState) -> None:
        local = self.out_dir / state.name / hls.MEDIA_PLAYLIST
        if not local.is_file():
            return
        produced = parse_media_playlist(local.read_text())
        published = state.published
        fresh = [s for s in produced.segments if s.uri not in published]
        ready: list[Segment] = []
        for segment in fresh:
            if not (self.out_dir / state.name / segment.uri).is_file():
                break  # listed but not renamed yet: next poll
            ready.append(segment)
        if not ready:
            return
        if state.playlist.init is None and produced.init is not None:
            self._upload(state.name, produced.init)
            state.playlist.init = produced.init
        for segment in ready:
            self._upload(state.name, segment.uri)
        state.playlist.segments.extend(ready)
        state.playlist.segments.sort(key=lambda s: s.uri)  # seg_<nnnnn>: name order is time
        # Only now, with every listed segment in storage, does a reader learn of them.
        self._put_playlist(state, ended=False)

    def _upload(self, rendition: str, name: str) -> None:
        key = self.key(rendition, name)
        extra = {"ContentType": hls.content_type(key), "CacheControl": hls.IMMUTABLE}
        self.client.upload_file(str(self.out_dir / rendition / name), self.bucket, key, extra)

    def _put_playlist(self, state: RenditionState, ended: bool) -> None:
        key = self.key(state.name, hls.MEDIA_PLAYLIST)
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=state.playlist.render(ended).encode(),
            ContentType=hls.content_type(key),
            CacheControl=hls.IMMUTABLE if ended else hls.LIVE_CACHE,
        )

    # ----- the end --------------------------------------------------------------------------

    def finish(self) -> None:
        """ffmpeg exited 0: publish what is left, then write every playlist, ended, into
        ``out_dir`` in place of ffmpeg's (a resumed ffmpeg's lists only its own part).
        The ended playlists are PUT by :func:`transcoder.publish.publish`, after the
        checks, so a ladder that fails verification never looks complete."""
        self.stop()
        self.poll()
        for state in self.states.values():
            local = self.out_dir / state.name / hls.MEDIA_PLAYLIST
            local.write_text(state.playlist.render(ended=True))

    def published_keys(self) -> set[str]:
        """Every segment and init segment key in storage (publish skips them)."""
        keys: set[str] = set()
        for state in self.states.values():
            names = [s.uri for s in state.playlist.segments]
            if state.playlist.init is not None:
                names.append(state.playlist.init)
            keys.update(self.key(state.name, name) for name in names)
        return keys


def first_packet_time(media: Path) -> float:
    """The presentation time of the first packet of ``media`` (an init + segment)."""
    result = subprocess.run(
        [*FIRST_PACKET, str(media)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(result.stdout.split()[0].strip(","))
