"""The s3proxy: Nebula's S3 front door (verify, re-sign, stream, announce uploads)."""
