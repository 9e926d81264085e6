"""The origin: serves published HLS ladders, original files and the watch page."""
