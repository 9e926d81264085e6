// The watch page: hls.js where Media Source Extensions exist, native HLS (Safari/iOS) otherwise,
// a quality menu, and thumbnail previews over the seek bar from the sprite + WebVTT track.
// Opened before the video is ready, it polls the asset's status, shows the progress, and
// starts playing by itself as soon as a (provisional) master exists: no reload.
(function () {
  "use strict";
  var POLL_MS = 1500;
  var root = document.getElementById("player");
  var video = document.getElementById("video");
  var quality = document.getElementById("quality");
  var levelLabel = document.getElementById("level");
  var seek = document.getElementById("seek");
  var preview = document.getElementById("preview");
  var master = root.dataset.master;
  // Read by the browser test and handy in a console: what played, and which levels were used.
  var state = (window.nebulaPlayer = {
    mode: null, switches: [], levels: [], hls: null, errors: [], status: root.dataset.state,
  });

  function showLevel(index, height) {
    levelLabel.textContent = height ? height + "p" : "";
    state.switches.push({ level: index, height: height || null, at: video.currentTime });
  }

  function startHlsJs() {
    // From the start even while the playlists still grow (hls.js would join them at their
    // live edge otherwise): a viewer of a fresh upload wants to see it from its beginning.
    var hls = new Hls({ capLevelToPlayerSize: false, startPosition: 0 });
    state.mode = "hls.js";
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, function (_event, data) {
      state.levels = data.levels.map(function (l) { return { height: l.height, bitrate: l.bitrate }; });
      data.levels.forEach(function (level, index) {
        var option = document.createElement("option");
        option.value = String(index);
        option.textContent = (level.height ? level.height + "p" : "level " + index) +
          " (" + Math.round(level.bitrate / 1000) + " kbit/s)";
        quality.appendChild(option);
      });
      video.play().catch(function () {});
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, function (_event, data) {
      var level = hls.levels[data.level];
      showLevel(data.level, level && level.height);
    });
    hls.on(Hls.Events.ERROR, function (_event, data) {
      state.errors.push(data.details);
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    quality.addEventListener("change", function () {
      // currentLevel flushes the buffer and switches now; -1 gives the choice back to ABR.
      hls.currentLevel = parseInt(quality.value, 10);
    });
    hls.loadSource(master);
    hls.attachMedia(video);
  }

  function startNative() {
    state.mode = "native";
    quality.disabled = true; // Safari picks the variant itself
    video.src = master;
    video.play().catch(function () {});
  }

  function start() {
    if (state.mode) return;
    waiting.hidden = true;
    // hls.js first: some desktop browsers now claim native HLS but give no level control.
    if (window.Hls && Hls.isSupported()) startHlsJs();
    else if (video.canPlayType("application/vnd.apple.mpegurl")) startNative();
    else { state.mode = "none"; levelLabel.textContent = "This browser cannot play HLS."; }
  }

  // ---- a video still transcoding: status, progress, and play once there is a master ------
  var waiting = document.getElementById("waiting");
  var statusLabel = document.getElementById("status");
  var durationLabel = document.getElementById("duration");

  function pollStatus() {
    fetch(root.dataset.api, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (asset) {
        if (asset) {
          state.status = asset.status;
          statusLabel.textContent = asset.status_text;
          durationLabel.textContent = Nebula.formatDuration(asset.duration);
          if (asset.playable) start();
          if (asset.status === "ready") { loadThumbnails(); return; }
          if (asset.status === "failed") { waiting.hidden = true; return; }
        }
        setTimeout(pollStatus, POLL_MS);
      })
      .catch(function () { setTimeout(pollStatus, POLL_MS); });
  }

  if (root.dataset.playable === "true") start();
  else if (root.dataset.state !== "failed") waiting.hidden = false;
  if (root.dataset.state !== "ready" && root.dataset.state !== "failed") pollStatus();

  // ---- seek bar with thumbnail previews ------------------------------------------------
  var cues = [];

  function parseTime(text) {
    var parts = text.trim().split(":").map(parseFloat);
    return parts.reduce(function (total, part) { return total * 60 + part; }, 0);
  }

  function parseVtt(text, base) {
    var lines = text.split(/\r?\n/);
    for (var i = 0; i < lines.length - 1; i++) {
      if (lines[i].indexOf("-->") < 0) continue;
      var span = lines[i].split("-->");
      var target = new URL(lines[i + 1].trim(), base);
      var xywh = /#xywh=(\d+),(\d+),(\d+),(\d+)/.exec(target.hash);
      target.hash = "";
      cues.push({
        start: parseTime(span[0]), end: parseTime(span[1].trim().split(" ")[0]),
        image: target.toString(),
        box: xywh ? xywh.slice(1).map(Number) : null,
      });
    }
  }

  var thumbnailsLoaded = false;

  function loadThumbnails() {
    // The track is published with the finished ladder.
    if (thumbnailsLoaded) return;
    thumbnailsLoaded = true;
    var thumbnails = new URL(root.dataset.thumbnails, window.location.href);
    fetch(thumbnails).then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (text) { if (text) parseVtt(text, thumbnails); })
      .catch(function () {});
  }

  // Ready, or failed over a ready video whose previous ladder (thumbnails too) still plays.
  if (root.dataset.state === "ready" || (root.dataset.state === "failed" && root.dataset.playable === "true")) loadThumbnails();

  function cueAt(seconds) {
    for (var i = 0; i < cues.length; i++) {
      if (seconds >= cues[i].start && seconds < cues[i].end) return cues[i];
    }
    return cues.length ? cues[cues.length - 1] : null;
  }

  function secondsAt(event) {
    var rect = seek.getBoundingClientRect();
    var fraction = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
    return { fraction: fraction, seconds: fraction * (video.duration || 0) };
  }

  seek.addEventListener("mousemove", function (event) {
    var at = secondsAt(event);
    var cue = cueAt(at.seconds);
    if (!cue || !isFinite(at.seconds)) { preview.hidden = true; return; }
    var frame = preview.querySelector(".frame");
    frame.style.backgroundImage = "url(" + JSON.stringify(cue.image) + ")";
    if (cue.box) {
      frame.style.width = cue.box[2] + "px";
      frame.style.height = cue.box[3] + "px";
      frame.style.backgroundPosition = -cue.box[0] + "px " + -cue.box[1] + "px";
    }
    var minutes = Math.floor(at.seconds / 60), seconds = Math.floor(at.seconds % 60);
    preview.querySelector(".time").textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
    preview.hidden = false;
    placePreview(at.fraction);
  });

  // Centred over the pointer, but never past the player's edges (near either end of the bar).
  function placePreview(fraction) {
    var width = seek.parentNode.clientWidth, half = preview.offsetWidth / 2;
    var x = Math.min(Math.max(fraction * width, half), Math.max(half, width - half));
    preview.style.left = x + "px";
  }
  seek.addEventListener("mouseleave", function () { preview.hidden = true; });
  seek.addEventListener("input", function () {
    if (video.duration) video.currentTime = (seek.value / 1000) * video.duration;
  });
  video.addEventListener("timeupdate", function () {
    if (video.duration && document.activeElement !== seek) {
      seek.value = String(Math.round((video.currentTime / video.duration) * 1000));
    }
  });
})();
