"""The s3proxy service: Nebula's S3 front door.

Owns SigV4 verification (header, presigned query, aws-chunked signed chunks and
trailers, checksums), access keys' scopes, the header allow-list and re-signing for the
backend, streaming bodies both ways, S3 error XML, the limits that keep one client from
starving the others, and recording upload events in the catalog.

May import: ``nebulacore``, ``catalog``, ``nebulaqueue``; never ``transcoder`` or
``origin`` (the shell hands it the enqueue function).
"""
