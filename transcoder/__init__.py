"""The transcoder: a Huey worker that turns uploaded videos into HLS ladders."""
