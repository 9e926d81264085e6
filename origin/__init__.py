"""The origin service: serves published HLS ladders, original files and the watch page.

Owns playlists, init segments, segments and byte ranges with one set of HTTP rules for
every cache tier (``respond``), the disk and memory caches, caching headers, CORS,
signed playback URLs and the list and watch pages. It reads storage and the catalog and
writes neither.

May import: ``nebulacore``, ``catalog``; never ``s3proxy`` or ``transcoder``.
"""
